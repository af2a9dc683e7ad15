"""multusctl: the operator's and the plugin's logic offline, on files (see `main`)."""
