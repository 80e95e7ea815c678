from ketenbus.kit.serve import serve
from ketenbus.trajectory.app import service

serve(service)
