"""Built-in student families, one file each, registered through the `distill.plugins` entry-point group."""
