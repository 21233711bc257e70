#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""ferry's JSON Schemas (schemas/, draft 7) applied to real traffic.

    validate_notification(inner)   the inner oslo notification (the decoded
                                   "oslo.message" string) and its payload,
                                   chosen by event_type via schemas/events.json
    validate_method_args(method, args)
                                   the args of an RPC method ferry accepts
                                   (validate_args is the same function)
    validate_reply(method, result) the result of a call ferry answers, for
                                   the methods whose result has a shape
                                   (schemas/methods/replies/)
    validate_payload(name, obj)    one payload primitive, e.g. "IpPayload"

All raise SchemaError with the failing path and reason.  Run as a script it
validates every schemas/examples file, every notification and cast fixture
in tests/data/reference/oslo-fixtures (a copy of ../shared/reference) and nova's upstream samples, prints
"N passed, M failed" and exits non-zero on any failure.
Needs Debian's python3-jsonschema: run with /usr/bin/python3.
"""
import glob
import json
import os
import sys

import jsonschema

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.normpath(os.path.join(HERE, "..", ".."))
SCHEMAS = os.path.join(REPO, "schemas")
FIXTURES = os.path.join(REPO, "tests", "data", "reference", "oslo-fixtures")


class SchemaError(ValueError):
    """A document does not match its schema."""


def _load(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def _load_store():
    store, by_path = {}, {}
    for path in glob.glob(os.path.join(SCHEMAS, "**", "*.json"), recursive=True):
        rel = os.path.relpath(path, SCHEMAS)
        if rel.startswith("examples" + os.sep) or rel == "events.json":
            continue
        schema = _load(path)
        jsonschema.Draft7Validator.check_schema(schema)
        store[schema["$id"]] = schema
        by_path[rel] = schema
    return store, by_path


_STORE, _BY_PATH = _load_store()
EVENTS = _load(os.path.join(SCHEMAS, "events.json"))["events"]
METHODS = sorted(os.path.splitext(os.path.basename(p))[0]
                 for p in glob.glob(os.path.join(SCHEMAS, "methods", "*.json")))
REPLIES = sorted(os.path.splitext(os.path.basename(p))[0]
                 for p in glob.glob(os.path.join(SCHEMAS, "methods", "replies", "*.json")))


def _validate(rel, doc, what):
    schema = _BY_PATH.get(rel)
    if schema is None:
        raise SchemaError("%s: no schema %s" % (what, rel))
    resolver = jsonschema.RefResolver.from_schema(schema, store=_STORE)
    validator = jsonschema.Draft7Validator(schema, resolver=resolver)
    errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path))
    if errors:
        lines = ["%s does not match %s:" % (what, rel)]
        for e in errors[:10]:
            path = "/".join(str(p) for p in e.absolute_path) or "(top)"
            lines.append("  at %s: %s" % (path, e.message))
        if len(errors) > 10:
            lines.append("  ... and %d more" % (len(errors) - 10))
        raise SchemaError("\n".join(lines))


def validate_payload(name, payload):
    """Validates a payload primitive against schemas/payloads/<name>.json."""
    _validate(os.path.join("payloads", name + ".json"), payload, "payload %s" % name)


def validate_notification(inner):
    """Validates an inner notification message and, by event_type, its payload."""
    if isinstance(inner, (str, bytes)):
        inner = json.loads(inner)
    _validate("notification.json", inner, "notification")
    event_type = inner["event_type"]
    ev = EVENTS.get(event_type)
    if ev is None:
        raise SchemaError("notification: unknown event_type %r (known: %s)"
                          % (event_type, ", ".join(sorted(EVENTS))))
    if inner["priority"] != ev["priority"]:
        raise SchemaError("notification %s: priority %r, expected %r"
                          % (event_type, inner["priority"], ev["priority"]))
    _validate(ev["payload"], inner["payload"], "payload of %s" % event_type)


def validate_method_args(method, args):
    """Validates the args dict of RPC method @method."""
    if method not in METHODS:
        raise SchemaError("method %r is not accepted by ferry (known: %s)"
                          % (method, ", ".join(METHODS)))
    _validate(os.path.join("methods", method + ".json"), args, "args of %s" % method)


validate_args = validate_method_args


def validate_reply(method, result):
    """Validates the result of a successful call of @method (a method with a
    reply schema; the others answer null)."""
    if method not in METHODS:
        raise SchemaError("method %r is not accepted by ferry" % method)
    if method not in REPLIES:
        if result is not None:
            raise SchemaError("result of %s: expected null, got %r" % (method, result))
        return
    _validate(os.path.join("methods", "replies", method + ".json"), result,
              "result of %s" % method)


def _missing(method):
    raise SchemaError("no example args for method %s" % method)


def _source_coverage():
    """Every method in rpc/rpc_methods.c's table has an args schema and
    example; every event worker/wk_flow*.c emit is in events.json with the
    priority it is sent with."""
    import re
    with open(os.path.join(REPO, "rpc", "rpc_methods.c"), encoding="utf-8") as f:
        table = f.read().split("rpc_methods[] = {", 1)[1].split("};", 1)[0]
    methods = sorted(set(re.findall(r'"(\w+)"', table)) - {"ferry"})
    if not methods:
        raise SchemaError("no method table found in rpc/rpc_methods.c")
    missing = [m for m in methods if m not in METHODS]
    flow = ""
    for path in sorted(glob.glob(os.path.join(REPO, "worker", "wk_flow*.c"))):
        with open(path, encoding="utf-8") as f:
            flow += f.read()
    events = {}
    for action, phase in re.findall(r'notify_action\([^;]*?"(live_migration\w*)",\s*"(\w+)"\)',
                                    flow):
        events["instance.%s.%s" % (action, phase)] = "INFO"
    for action in re.findall(r'end_inbound\([^;]*?"\w+",\s*"(live_migration\w*)"', flow):
        for phase in ("start", "end"):
            events["instance.%s.%s" % (action, phase)] = "INFO"
    for ev, prio in re.findall(r'wk_bus_notify\([^;]*?"([\w.]+)",\s*"([A-Z]+)"', flow):
        events[ev] = prio
    if len(events) < 10:
        raise SchemaError("found only %d event types in wk_flow*.c" % len(events))
    missing += ["%s (%s)" % (e, p) for e, p in sorted(events.items())
                if EVENTS.get(e, {}).get("priority") != p]
    if missing:
        raise SchemaError("not covered by schemas/: " + ", ".join(missing))


def _checks():
    """Yields (label, thunk) for every document the self-test validates."""
    yield "worker sources: methods and events covered", _source_coverage
    ex = os.path.join(SCHEMAS, "examples")
    for path in sorted(glob.glob(os.path.join(ex, "*.json"))):
        name = os.path.splitext(os.path.basename(path))[0]
        yield "examples/%s.json" % name, lambda p=path, n=name: validate_payload(n, _load(p))
    for path in sorted(glob.glob(os.path.join(ex, "methods", "*.json"))):
        name = os.path.splitext(os.path.basename(path))[0]
        yield "examples/methods/%s.json" % name, lambda p=path, n=name: validate_args(n, _load(p))
    for path in sorted(glob.glob(os.path.join(ex, "replies", "*.json"))):
        name = os.path.splitext(os.path.basename(path))[0]
        yield "examples/replies/%s.json" % name, lambda p=path, n=name: validate_reply(n, _load(p))
    for method in METHODS:
        if not os.path.exists(os.path.join(ex, "methods", method + ".json")):
            yield "examples/methods/%s.json" % method, lambda m=method: _missing(m)
    for path in sorted(glob.glob(os.path.join(ex, "notifications", "*.json"))):
        yield ("examples/notifications/" + os.path.basename(path),
               lambda p=path: validate_notification(_load(p)))
    for path in sorted(glob.glob(os.path.join(FIXTURES, "notification_*.json"))):
        fx = _load(path)
        if not isinstance(fx, dict) or "body_raw" not in fx:
            continue  # notification_priorities / _vs_upstream_samples are tables

        def check(fx=fx):
            body = json.loads(fx["body_raw"])
            if body.get("oslo.version") != "2.0" or not isinstance(body.get("oslo.message"), str):
                raise SchemaError("body_raw is not an oslo 2.0 envelope")
            inner = json.loads(body["oslo.message"])
            validate_notification(inner)
            want_rk = "versioned_notifications." + inner["priority"].lower()
            if fx["routing_key"] != want_rk:
                raise SchemaError("routing key %s, expected %s" % (fx["routing_key"], want_rk))
        yield "fixture " + os.path.basename(path), check
    for path in sorted(glob.glob(os.path.join(FIXTURES, "cast_*.json"))):
        inner = _load(path).get("oslo.message_decoded", {})
        if inner.get("method") in METHODS:
            yield ("fixture " + os.path.basename(path),
                   lambda i=inner: validate_args(i["method"], i["args"]))
    samples = os.path.join(FIXTURES, "upstream_notification_samples_26.2.2", "resolved")
    for path in sorted(glob.glob(os.path.join(samples, "*.json"))):
        def check_sample(path=path):
            s = _load(path)
            ev = EVENTS.get(s["event_type"])
            if ev is None or ev["priority"] != s["priority"]:
                raise SchemaError("unknown event or priority %s/%s" % (s["event_type"], s["priority"]))
            validate_payload(os.path.splitext(os.path.basename(ev["payload"]))[0], s["payload"])
        yield "upstream sample " + os.path.basename(path), check_sample


def main():
    passed = failed = 0
    for label, check in _checks():
        try:
            check()
        except (SchemaError, ValueError, KeyError, OSError) as e:
            failed += 1
            print("FAIL %s: %s" % (label, e), file=sys.stderr)
        else:
            passed += 1
            print("ok   %s" % label)
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed or not passed else 0


if __name__ == "__main__":
    sys.exit(main())
