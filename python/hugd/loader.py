"""Resolve a hugd TARGET to a WSGI callable.

TARGET is one of:
  path/to/app.py     the file is imported; its folder goes first on sys.path
  module             the module's __hug_wsgi__ (a Hug API)
  module:attr        any WSGI callable; attr may be dotted (module:obj.app)

The master calls load() once, before forking, so the import and Hug's route
building happen once and the workers share the result.
"""

import importlib
import importlib.util
import inspect
import os
import sys
import warnings


class TargetError(Exception):
    """The target names nothing that can serve: reported without a traceback."""


def setup_path(pythonpath, cwd):
    """The working directory goes on sys.path, as with gunicorn; --pythonpath
    entries go before it."""
    entries = [p for p in (pythonpath or "").split(",") if p.strip()]
    for p in reversed([cwd] + [os.path.abspath(p.strip()) for p in entries]):
        if p in sys.path:
            sys.path.remove(p)
        sys.path.insert(0, p)


def _import_file(path):
    path = os.path.abspath(path)
    if not os.path.isfile(path):
        raise TargetError("%s: no such file" % path)
    folder = os.path.dirname(path)
    if folder in sys.path:
        sys.path.remove(folder)
    sys.path.insert(0, folder)
    name = os.path.splitext(os.path.basename(path))[0]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise TargetError("%s: cannot be imported as a Python module" % path)
    module = importlib.util.module_from_spec(spec)
    # Registered before running it, as a normal import would, so that the
    # module can be found under its name (Hug looks modules up by name).
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module


def _start_hug(module):
    """Build a Hug module's Falcon app now, in the master, instead of on the
    first request in every worker (what hug's lazy __hug_wsgi__ would do)."""
    api = module.__dict__.get("__hug__")
    if api is None or module.__dict__.get("__hug_serving__"):
        return
    with warnings.catch_warnings():
        # Hug builds its app with falcon.API, which Falcon 3 marks deprecated;
        # the warning is about Hug, not the application, and would otherwise
        # be logged at every start and reload.
        warnings.filterwarnings("ignore", message=".*API class may be removed.*")
        module.__hug_wsgi__ = api.http.server()
    module.__hug_serving__ = True


def _is_hug_api(obj):
    hug = sys.modules.get("hug")
    api_type = getattr(getattr(hug, "api", None), "API", None)
    return api_type is not None and isinstance(obj, api_type)


def _check_wsgi(obj, target):
    if _is_hug_api(obj):
        raise TargetError(
            "%s is a hug.API object, not a WSGI callable; serve the module itself "
            "(hugd MODULE) or MODULE:__hug_wsgi__" % target
        )
    if inspect.ismodule(obj):
        raise TargetError("%s is a module, not a WSGI callable" % target)
    if not callable(obj):
        raise TargetError(
            "%s is a %s, not a WSGI callable" % (target, type(obj).__name__)
        )
    try:
        sig = inspect.signature(obj)
    except (TypeError, ValueError):
        return obj  # builtins and C types may have no signature: trust them
    try:
        sig.bind(object(), object())
    except TypeError:
        raise TargetError(
            "%s%s cannot be called as app(environ, start_response)" % (target, sig)
        ) from None
    return obj


def load(target):
    """Return the WSGI callable TARGET names; raise TargetError if it names none."""
    if target.endswith(".py") or os.sep in target:
        module_part, attr = target, None
        if ":" in target and not os.path.exists(target):
            module_part, attr = target.rsplit(":", 1)
        module = _import_file(module_part)
    else:
        module_part, _, attr = target.partition(":")
        if not module_part:
            raise TargetError("%s: no module named" % target)
        module = importlib.import_module(module_part)

    _start_hug(module)
    if not attr:
        obj = module.__dict__.get("__hug_wsgi__")
        if obj is None:
            raise TargetError(
                "%s: module %r has no __hug_wsgi__ (it defines no Hug routes); "
                "name a WSGI callable as %s:ATTRIBUTE" % (target, module.__name__, module_part)
            )
    else:
        obj = module
        for part in attr.split("."):
            try:
                obj = getattr(obj, part)
            except AttributeError:
                raise TargetError(
                    "%s: %r has no attribute %r" % (target, module.__name__, attr)
                ) from None
    return _check_wsgi(obj, target)


def source_files():
    """The application's own source files, for --reload: every loaded
    module's file outside the interpreter's library and installed packages
    (those change with a package upgrade, not with an edit)."""
    import sysconfig
    libs = {os.path.realpath(p) for p in (sysconfig.get_paths().get(k) for k in
                                           ("stdlib", "platstdlib", "purelib", "platlib")) if p}
    out = set()
    for mod in list(sys.modules.values()):
        f = getattr(mod, "__file__", None)
        if not isinstance(f, str) or not f.endswith(".py"):
            continue
        real = os.path.realpath(f)
        if any(real.startswith(lib + os.sep) for lib in libs):
            continue
        if "/site-packages/" in real or "/dist-packages/" in real or not os.path.exists(real):
            continue
        out.add(real)
    return sorted(out)
