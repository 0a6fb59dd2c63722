"""REST: aiohttp handlers over the service layer."""
