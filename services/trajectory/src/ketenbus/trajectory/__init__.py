"""ketenbus.trajectory"""
