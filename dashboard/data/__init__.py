"""Each page's reads, named for the page they serve: plain functions over a store, no Dash."""
