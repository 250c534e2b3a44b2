"""socialgate: mitmproxy addons that gate social networking behind approved exemptions."""

__version__ = "0.1.0"
