"""ketenbus.analytics"""
