"""ketenbus.learning"""
