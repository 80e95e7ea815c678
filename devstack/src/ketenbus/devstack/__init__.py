"""ketenbus.devstack"""
