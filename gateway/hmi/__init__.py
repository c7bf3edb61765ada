"""Browser control-room mimic (single-line diagram, alarms, trends, SBO control) over MQTT WebSockets.

The server only serves static files and a site description; the page talks to the broker itself.
"""
