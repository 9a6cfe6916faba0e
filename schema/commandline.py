"""Every service's command line, generated one way from its settings model.

The contract between a service's settings and its flags: each field is a flag named after it
(``mqtt_ca_file`` / nested ``mqtt.ca_file`` -> ``--mqtt-ca-file``), and its variable is the
service's prefix plus the same name (``WATTSTREAM_SIM_MQTT_CA_FILE``); a flag beats the variable,
the variable beats the default. Booleans take ``--x`` / ``--no-x``, lists repeat the flag.
A field may add spellings with :class:`Flag` in its ``Annotated`` metadata. Invalid settings
end the program with one line on stderr and exit status 2; logging is configured here, once,
in one format, for every service.

It lives in ``schema`` because ``schema`` is the one package every service may import; it reads
no settings source itself (the caller's ``BaseSettings`` class does).
"""

from __future__ import annotations

import argparse
import enum
import logging
import sys
import types
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, NoReturn, TypeVar, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo

from schema.logformat import TEXT_FORMAT, LogFormat, handler

LOG_FORMAT = TEXT_FORMAT

ModelT = TypeVar("ModelT", bound=BaseModel)


@dataclass(frozen=True, slots=True)
class Flag:
    """More spellings of a field's flag (``Annotated[Path | None, Flag("--fleet")]``); with
    ``value``, each spelling sets the field to that value and takes no argument."""

    names: tuple[str, ...]
    value: object = None

    def __init__(self, *names: str, value: object = None) -> None:
        object.__setattr__(self, "names", names)
        object.__setattr__(self, "value", value)


def configure_logging(
    level: str, log_format: LogFormat = "text", service: str = "wattstream"
) -> None:
    """The one logging set-up of every service's ``main()``: plain text, or JSON events
    (:mod:`schema.logformat`) naming ``service``."""
    logging.basicConfig(level=level.upper(), handlers=[handler(log_format, service)], force=True)


def fail(prog: str, message: str) -> NoReturn:
    """One line on stderr, exit status 2: how every service refuses to start."""
    sys.stderr.write(f"{prog}: {' '.join(message.split())}\n")
    sys.exit(2)


def describe(error: ValidationError) -> str:
    """A validation error as one line: ``mqtt.port: Input should be ...; devices: ...``."""
    parts = []
    for item in error.errors(include_url=False):
        where = ".".join(str(part) for part in item["loc"])
        parts.append(f"{where}: {item['msg']}" if where else str(item["msg"]))
    return "invalid settings: " + "; ".join(parts)


def _unwrap(annotation: Any) -> Any:
    """``X | None`` -> ``X``."""
    if get_origin(annotation) in (Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return annotation


def _block(annotation: Any) -> type[BaseModel] | None:
    inner = _unwrap(annotation)
    if isinstance(inner, type) and issubclass(inner, BaseModel):
        return inner
    return None


def _choices(annotation: Any) -> list[str] | None:
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return [str(member.value) for member in annotation]
    if get_origin(annotation) is Literal:
        return [str(arg) for arg in get_args(annotation)]
    return None


def _help(info: FieldInfo, variable: str, choices: list[str] | None) -> str:
    about = " ".join((info.description or "").split()).replace("%", "%%")
    one_of = f" One of: {', '.join(choices)}." if choices else ""
    default = info.get_default(call_default_factory=False)
    shown = "" if info.is_required() or default in (None, "", (), []) else f" (default {default})"
    return f"{about}{one_of}{shown} [{variable}]".strip()


def add_settings_flags(
    parser: argparse.ArgumentParser, model: type[BaseModel], env_prefix: str, *, _path: str = ""
) -> None:
    """One flag per field of ``model`` (nested blocks included, one argument group each)."""
    for name, info in model.model_fields.items():
        dest = f"{_path}{name}"
        block = _block(info.annotation)
        if block is not None:
            group = parser.add_argument_group(name, block.__doc__)
            add_settings_flags(group, block, env_prefix, _path=f"{dest}.")  # type: ignore[arg-type]
            continue
        flag = "--" + dest.replace(".", "-").replace("_", "-")
        variable = (env_prefix + dest.replace(".", "_")).upper()
        extra = [m for m in info.metadata if isinstance(m, Flag)]
        annotation = _unwrap(info.annotation)
        # Values stay strings: the settings model validates them (one line on error), and
        # names the valid choices in the help.
        kwargs: dict[str, Any] = {"dest": dest, "default": argparse.SUPPRESS}
        if annotation is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
            choices = None
        elif get_origin(annotation) in (list, tuple):
            kwargs["action"] = "append"
            kwargs["metavar"] = name.removesuffix("s").split("_")[-1].upper()
            choices = _choices(get_args(annotation)[0])
        else:
            kwargs["metavar"] = name.split("_")[-1].upper()
            choices = _choices(annotation)
        parser.add_argument(flag, help=_help(info, variable, choices), **kwargs)
        for alias in extra:
            if alias.value is not None:
                parser.add_argument(
                    *alias.names,
                    dest=dest,
                    action="store_const",
                    const=alias.value,
                    default=argparse.SUPPRESS,
                    help=f"the same as {flag}={alias.value}",
                )
            else:
                parser.add_argument(*alias.names, **{**kwargs, "help": f"the same as {flag}"})


def flag_values(namespace: argparse.Namespace) -> dict[str, Any]:
    """The flags given, nested as the settings take them (``mqtt.host`` -> ``{"mqtt": ...}``)."""
    values: dict[str, Any] = {}
    for dest, value in vars(namespace).items():
        *blocks, leaf = dest.split(".")
        target = values
        for block in blocks:
            target = target.setdefault(block, {})
        target[leaf] = value
    return values


class OneLineParser(argparse.ArgumentParser):
    """An argument parser whose errors are one line and exit 2, like invalid settings."""

    def error(self, message: str) -> NoReturn:
        fail(self.prog, message)


def settings_parser(
    settings_cls: type[BaseModel], prog: str, description: str
) -> argparse.ArgumentParser:
    prefix = str(settings_cls.model_config.get("env_prefix", ""))
    parser = OneLineParser(
        prog=prog,
        description=f"{description} Every flag defaults to its {prefix}* environment variable.",
    )
    add_settings_flags(parser, settings_cls, prefix)
    return parser


def build_settings(
    settings_cls: Callable[..., ModelT], prog: str, values: dict[str, Any]
) -> ModelT:
    """``settings_cls(**values)`` (flags over variables over defaults), or exit 2 with one
    line saying what is wrong."""
    try:
        return settings_cls(**values)
    except ValidationError as exc:
        fail(prog, describe(exc))


def parse_settings(
    settings_cls: type[ModelT],
    prog: str,
    description: str,
    argv: Sequence[str] | None = None,
) -> ModelT:
    """Flags -> settings (exit 2 on invalid ones) -> logging at the settings' ``log_level``."""
    parser = settings_parser(settings_cls, prog, description)
    settings = build_settings(settings_cls, prog, flag_values(parser.parse_args(argv)))
    configure_logging(
        str(getattr(settings, "log_level", "INFO")),
        getattr(settings, "log_format", "text"),
        service=prog.removeprefix("wattstream "),
    )
    return settings


def variables(settings_cls: type[BaseModel], values: Mapping[str, Any]) -> dict[str, str]:
    """The environment that gives ``settings_cls`` these ``values`` (nested like the settings:
    ``{"mqtt": {"host": "h"}}`` -> ``{"<PREFIX>MQTT_HOST": "h"}``); refuses unknown names, so
    whoever starts a service never spells its variables by hand."""
    prefix = str(settings_cls.model_config.get("env_prefix", ""))
    return {(prefix + name).upper(): text for name, text in _flat(settings_cls, values, "")}


def _flat(model: type[BaseModel], values: Mapping[str, Any], path: str) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    for name, value in values.items():
        info = model.model_fields.get(name)
        if info is None:
            raise KeyError(f"{model.__name__} has no setting {path}{name}")
        block = _block(info.annotation)
        if block is not None and isinstance(value, Mapping):
            found.extend(_flat(block, value, f"{path}{name}_"))
        else:
            found.append((f"{path}{name}", str(value)))
    return found
