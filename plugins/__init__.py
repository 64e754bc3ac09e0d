"""Built-in plugins. Each subpackage is registered through the `distill.plugins` entry-point group."""
