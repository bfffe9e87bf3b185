"""No hug routes, no WSGI callable: `plain_module` and `plain_module:value`
are both invalid targets."""
value = 42
