"""ketenbus.kit"""
