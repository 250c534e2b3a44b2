"""Pages the proxy serves to staff: the block page (HTML or plain text)."""
