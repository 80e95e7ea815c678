from ketenbus.kit.serve import serve
from ketenbus.notifications.app import service

serve(service)
