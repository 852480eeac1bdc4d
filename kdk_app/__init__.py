"""kdk-app: real-time, service-oriented backends on Flask, in the style of Kalisio KDK."""

__version__ = "0.1.0"
