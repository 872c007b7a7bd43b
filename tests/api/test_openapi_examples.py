"""Every request and response body in ``/openapi.json`` is described, with examples (issue 7,
"API completeness"): a client author reading ``/docs`` sees a schema and a filled-in body for
each operation. Examples are also checked against their own schema, so they cannot drift."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

# schemathesis' own JSON Schema validator (installed with it, by `make test`).
jsonschema_rs = pytest.importorskip("jsonschema_rs")

#: Bodies that are not JSON: they declare their media type (and a schema) instead of examples.
TEXT_TYPES = ("text/csv", "text/plain")


def _resolve(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        schema = document["components"]["schemas"][name]
    return schema


def _examples(document: dict[str, Any], media: dict[str, Any]) -> list[Any]:
    """The examples of a body: on the media type, else on its (resolved) schema."""
    found: list[Any] = []
    if "example" in media:
        found.append(media["example"])
    found.extend(v.get("value") for v in (media.get("examples") or {}).values())
    schema = _resolve(document, media.get("schema") or {})
    if "example" in schema:
        found.append(schema["example"])
    found.extend(schema.get("examples") or [])
    return found


def _check(document: dict[str, Any], where: str, content: dict[str, Any]) -> list[str]:
    problems = []
    for media_type, media in content.items():
        if not media.get("schema"):
            problems.append(f"{where} {media_type}: no schema")
        if media_type in TEXT_TYPES:
            continue
        examples = _examples(document, media)
        if not examples:
            problems.append(f"{where} {media_type}: no example")
        if media_type != "application/json":
            continue  # the YAML bodies are text whose example is the document itself
        validator = jsonschema_rs.Draft202012Validator(
            {**media["schema"], "components": document["components"]}
        )
        for example in examples:
            for error in validator.iter_errors(example):
                problems.append(f"{where}: example does not match its schema: {error.message}")
    return problems


async def test_every_body_has_a_schema_and_an_example(anon: httpx.AsyncClient) -> None:
    document = (await anon.get("/openapi.json")).json()
    problems: list[str] = []
    operations = 0
    for path, item in document["paths"].items():
        for method, operation in item.items():
            operations += 1
            where = f"{method.upper()} {path}"
            success = sorted(code for code in operation["responses"] if code.startswith("2"))
            if not success:
                problems.append(f"{where}: no success response documented")
                continue
            for code in success:
                response = operation["responses"][code]
                content = response.get("content")
                if code == "204":
                    if content:
                        problems.append(f"{where} 204 documents a body")
                    continue
                if not content:
                    problems.append(f"{where} {code}: no body documented")
                    continue
                problems += _check(document, f"{where} -> {code}", content)
            request = operation.get("requestBody")
            if request is not None:
                problems += _check(document, f"{where} request", request["content"])
    assert operations > 60
    assert not problems, "\n".join(problems)


async def test_line_answers_never_carry_the_password(
    anon: httpx.AsyncClient,
) -> None:
    """Write-only secrets: the line and trunk answers have no password field at all, while
    the line input documents one."""
    schemas = (await anon.get("/openapi.json")).json()["components"]["schemas"]
    for name in ("LineOut", "TrunkOut", "LineList", "TrunkList"):
        assert "password" not in schemas[name].get("properties", {}), name
        assert "has_password" in schemas[name].get("properties", {}) or name.endswith("List")
    example = schemas["LineIn"]["examples"][0]
    assert example["auth_id_with_domain"] is True and example["proxy"]
    assert example["domain"] != example["proxy"]  # a logical IMS domain, sent to the SBC
    prefix = schemas["PrefixIn"]["examples"][0]
    assert (prefix["pattern"], prefix["strip"]) == ("9", 1)
