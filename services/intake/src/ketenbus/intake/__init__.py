"""ketenbus.intake"""
