from ketenbus.kit.serve import serve
from ketenbus.learning.app import service

serve(service)
