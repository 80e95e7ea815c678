"""ketenbus.contracts"""
