from ketenbus.intake.app import service
from ketenbus.kit.serve import serve

serve(service)
