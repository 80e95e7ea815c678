"""ketenbus.notifications"""
