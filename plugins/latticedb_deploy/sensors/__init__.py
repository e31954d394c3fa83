"""Sensors: deferrable waits that hand their polling to a trigger."""
