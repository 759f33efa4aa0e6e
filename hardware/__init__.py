"""Status LED and button on the Raspberry Pi (gpiozero); safe without [hardware] or off-Pi."""

from hardware.panel import Panel

__all__ = ["Panel"]
