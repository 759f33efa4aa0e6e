"""MQTT state and commands, and Home Assistant discovery (an edge, like status.py):
topics.py (topics, payloads, command parsing), discovery.py (Home Assistant), client.py
(the bridge task beside the control loop)."""

from controller.mqtt.client import MqttBridge

__all__ = ["MqttBridge"]
