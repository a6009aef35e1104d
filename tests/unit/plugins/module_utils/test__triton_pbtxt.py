# SPDX-License-Identifier: GPL-3.0-or-later
"""The schema-less protobuf text format reader/writer, checked against Triton's own ModelConfig proto.

tritonclient ships Triton's ``model_config.proto`` compiled (``tritonclient.grpc.model_config_pb2``);
google.protobuf's ``text_format`` is the reference parser for what we write.
"""

from __future__ import annotations

import math

import pytest
from google.protobuf import descriptor, text_format
from hypothesis import given, settings
from hypothesis import strategies as st
from tritonclient.grpc import model_config_pb2

from ansible_collections.deploy2standalone.clearml.plugins.module_utils._triton_pbtxt import (
    ENUM_FIELDS,
    Ident,
    Message,
    PbList,
    PbtxtError,
    format_message,
    from_python,
    get_all,
    get_one,
    parse_pbtxt,
    strip_stray_quotes,
    to_python,
)

TRITON_EXAMPLE = """
# From Triton's model configuration documentation, with comments and both list styles.
name: "densenet_onnx"
platform: "onnxruntime_onnx"
max_batch_size : 0
input [
  {
    name: "data_0"
    data_type: TYPE_FP32
    format: FORMAT_NCHW
    dims: [ 3, 224, 224 ]
    reshape { shape: [ 1, 3, 224, 224 ] }
  }
]
output {
  name: "fc6_1"; data_type: TYPE_FP32, dims: [ 1000 ]
  reshape { shape: [ 1, 1000, 1, 1 ] }
  label_filename: "densenet_labels.txt"
}
instance_group [ { count: 2, kind: KIND_GPU, gpus: [ 0, 1 ] }, { kind: KIND_CPU } ]
dynamic_batching < preferred_batch_size: [ 4, 8 ] max_queue_delay_microseconds: 100 >
optimization { execution_accelerators { gpu_execution_accelerator : [ { name : "tensorrt" } ] } }
parameters { key: "intra_op_thread_count" value: { string_value: "0" } }
parameters: { key: "x" value { string_value: 'single ' "and double" } }
model_warmup [{ name: "w" batch_size: 1 inputs { key: "data_0" value { data_type: TYPE_FP32 dims: 3 dims: 224 zero_data: true } } }]
"""


def as_model_config(text: str) -> model_config_pb2.ModelConfig:
    return text_format.Parse(text, model_config_pb2.ModelConfig())


def test_parse_a_full_triton_config() -> None:
    msg = parse_pbtxt(TRITON_EXAMPLE)
    data = to_python(msg)
    assert data["name"] == "densenet_onnx"
    assert data["max_batch_size"] == 0
    assert data["input"] == [
        {
            "name": "data_0",
            "data_type": "TYPE_FP32",
            "format": "FORMAT_NCHW",
            "dims": [3, 224, 224],
            "reshape": {"shape": [1, 3, 224, 224]},
        }
    ]
    assert data["output"]["label_filename"] == "densenet_labels.txt"
    assert data["instance_group"] == [{"count": 2, "kind": "KIND_GPU", "gpus": [0, 1]}, {"kind": "KIND_CPU"}]
    assert data["dynamic_batching"] == {"preferred_batch_size": [4, 8], "max_queue_delay_microseconds": 100}
    assert data["parameters"] == [
        {"key": "intra_op_thread_count", "value": {"string_value": "0"}},
        {"key": "x", "value": {"string_value": "single and double"}},
    ]
    assert data["model_warmup"][0]["inputs"]["value"]["zero_data"] is True
    assert get_one(msg, "platform") == "onnxruntime_onnx"
    assert [to_python(v)["key"] for v in get_all(msg, "parameters")] == ["intra_op_thread_count", "x"]


def test_written_text_is_what_protobuf_reads() -> None:
    msg = parse_pbtxt(TRITON_EXAMPLE)
    written = format_message(msg)
    assert parse_pbtxt(written) == msg
    assert format_message(parse_pbtxt(written)) == written
    # The reference parser reads the same config from the original and from our rewrite.
    assert as_model_config(written) == as_model_config(TRITON_EXAMPLE)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a: 1", {"a": 1}),
        ("a: -1 b: +2", {"a": -1, "b": 2}),
        ("a: 0x1F", {"a": 31}),
        ("a: 1.5", {"a": 1.5}),
        ("a: 2.5e-3", {"a": 0.0025}),
        ("a: 1.0f", {"a": 1.0}),
        ("a: .5", {"a": 0.5}),
        ("a: true b: false", {"a": True, "b": False}),
        ("a: KIND_GPU", {"a": "KIND_GPU"}),
        ("a: 1 a: 2", {"a": [1, 2]}),
        ("a: [1, 2] a: 3", {"a": [1, 2, 3]}),
        ("a: []", {"a": []}),
        ("a {}", {"a": {}}),
        ("a <>", {"a": {}}),
        ("a: { b: 1 }", {"a": {"b": 1}}),
        ("a [ { b: 1 }, { b: 2 } ]", {"a": [{"b": 1}, {"b": 2}]}),
        ("a { b: 1 } a { b: 2 }", {"a": [{"b": 1}, {"b": 2}]}),
        ('a: "x" "y"', {"a": "xy"}),
        ("a: 'it''s'", {"a": "its"}),
        (r'a: "q\"uote\\back\nline\ttab"', {"a": 'q"uote\\back\nline\ttab'}),
        (r'a: "\101\x42\u00e9\U0001F600"', {"a": "ABé\U0001f600"}),
        (r'a: "\303\251"', {"a": "é"}),  # octal escapes are UTF-8 bytes
        ('a: "é"', {"a": "é"}),
        ("# only a comment\n", {}),
        ("a: 1 # trailing\n# next\nb: 2", {"a": 1, "b": 2}),
        ("a: 1; b: 2, c: 3", {"a": 1, "b": 2, "c": 3}),
        ("a: inf b: -inf", {"a": math.inf, "b": -math.inf}),
    ],
)
def test_parse_table(text: str, expected: dict) -> None:
    assert to_python(parse_pbtxt(text)) == expected


def test_nan_and_identifier_types() -> None:
    msg = parse_pbtxt("a: nan b: TYPE_FP32 c: 'TYPE_FP32'")
    assert math.isnan(get_one(msg, "a"))
    assert isinstance(get_one(msg, "b"), Ident)
    assert not isinstance(get_one(msg, "c"), Ident)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("a 1", "expected ':' or '{' after field 'a'"),
        ("a: ", "unexpected end of text"),
        ("a: {", "unexpected end of text"),
        ("a: { b: 1", "unexpected end of text"),
        ("a: }", "unexpected '}'"),
        ("a: [1, 2", "expected ']'"),
        ('a: "unterminated', "unexpected character"),
        (r'a: "\q"', "unknown escape"),
        (r'a: "\xZZ"', "bad \\x escape"),
        ("a: 1 }", "expected a field name"),
        ("1: 2", "expected a field name"),
        ("a: 1\nb: @", "line 2, column 4"),
        (r'a: "\377"', "not UTF-8"),
        ("a: -foo", "bad value"),
    ],
)
def test_parse_errors_say_where(text: str, fragment: str) -> None:
    with pytest.raises(PbtxtError) as err:
        parse_pbtxt(text)
    assert fragment in str(err.value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ('"onnxruntime_onnx"', "onnxruntime_onnx"),  # --aux-config platform="onnxruntime_onnx", as stored
        ('\\"onnxruntime_onnx\\"', "onnxruntime_onnx"),
        ("'onnxruntime_onnx'", "onnxruntime_onnx"),
        ("\"'x'\"", "x"),
        (' "x" ', "x"),
        ("onnxruntime_onnx", "onnxruntime_onnx"),
        ('"', '"'),
        ('"a"b"', 'a"b'),
        ('a"', 'a"'),
        ("", ""),
    ],
)
def test_strip_stray_quotes(value: str, expected: str) -> None:
    assert strip_stray_quotes(value) == expected


def test_from_python_as_clearml_serving_stores_aux_config() -> None:
    aux = {
        "platform": '"onnxruntime_onnx"',
        "max_batch_size": 8,
        "dynamic_batching": {"max_queue_delay_microseconds": 100, "preferred_batch_size": [4, 8]},
        "response_cache": {"enable": True},
        "instance_group": {"0": {"kind": "KIND_GPU", "count": 2, "gpus": [0]}, "1": {"kind": "KIND_CPU"}},
        "optimization": {"priority": "PRIORITY_MAX"},
        "label": "KIND_GPU",  # not an enum field: a string
        "ignored": None,
    }
    msg = from_python(aux)
    assert [k for k, _ in msg] == sorted(k for k in aux if k != "ignored")
    data = to_python(msg)
    assert data["platform"] == "onnxruntime_onnx"
    assert data["instance_group"] == [{"count": 2, "gpus": [0], "kind": "KIND_GPU"}, {"kind": "KIND_CPU"}]
    assert isinstance(to_python_raw(msg, "response_cache", "enable"), Ident)
    assert isinstance(to_python_raw(msg, "optimization", "priority"), Ident)
    assert not isinstance(get_one(msg, "label"), Ident)
    text = format_message(msg)
    assert 'platform: "onnxruntime_onnx"' in text
    assert "kind: KIND_GPU" in text
    assert 'label: "KIND_GPU"' in text


def to_python_raw(msg: Message, *path: str) -> object:
    value: object = msg
    for key in path:
        value = get_one(value, key)  # type: ignore[arg-type]
    return value


def test_from_python_refuses_what_text_format_cannot_say() -> None:
    with pytest.raises(PbtxtError, match="nested lists"):
        from_python({"a": [[1, 2]]})
    with pytest.raises(PbtxtError, match="unsupported value"):
        from_python({"a": object()})


def test_enum_fields_are_every_enum_field_of_triton_model_config() -> None:
    """ENUM_FIELDS is derived by hand from model_config.proto; walk the real descriptor to check it."""
    found: set[str] = set()
    seen: set[str] = set()

    def walk(desc: descriptor.Descriptor) -> None:
        if desc.full_name in seen:
            return
        seen.add(desc.full_name)
        for f in desc.fields:
            if f.type == descriptor.FieldDescriptor.TYPE_ENUM:
                found.add(f.name)
            elif f.type == descriptor.FieldDescriptor.TYPE_MESSAGE:
                walk(f.message_type)

    walk(model_config_pb2.ModelConfig.DESCRIPTOR)
    assert found == ENUM_FIELDS


def test_writer_layout() -> None:
    msg = Message(
        [
            ("name", "m"),
            ("input", PbList([Message([("name", "x"), ("dims", PbList([-1, 4]))])])),
            ("dynamic_batching", Message([("max_queue_delay_microseconds", 100)])),
            ("empty", PbList()),
            ("flag", Ident("true")),
            ("ratio", 0.25),
        ]
    )
    assert format_message(msg) == (
        'name: "m"\n'
        "input [\n"
        "  {\n"
        '    name: "x"\n'
        "    dims: [ -1, 4 ]\n"
        "  }\n"
        "]\n"
        "dynamic_batching {\n"
        "  max_queue_delay_microseconds: 100\n"
        "}\n"
        "empty: []\n"
        "flag: true\n"
        "ratio: 0.25\n"
    )
    assert format_message(Message()) == ""
    with pytest.raises(PbtxtError, match="mixes messages and scalars"):
        format_message(Message([("a", PbList([1, Message()]))]))


# Property: whatever tree we build, writing and reading it back gives the same tree.
_names = st.from_regex(r"[a-z_][a-z0-9_]{0,8}", fullmatch=True)
_scalars = st.one_of(
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=True),
    st.text(max_size=20),
    st.from_regex(r"[A-Z][A-Z0-9_]{0,10}", fullmatch=True).map(Ident),
)


def _nest(children: st.SearchStrategy[Message]) -> st.SearchStrategy[Message]:
    value = st.one_of(
        _scalars,
        children,
        st.lists(_scalars, max_size=4).map(PbList),
        st.lists(children, min_size=1, max_size=3).map(PbList),
    )
    return st.lists(st.tuples(_names, value), max_size=5).map(Message)


_messages = st.recursive(st.lists(st.tuples(_names, _scalars), max_size=4).map(Message), _nest, max_leaves=25)


@settings(max_examples=200, deadline=None)
@given(_messages)
def test_write_then_read_is_identity(msg: Message) -> None:
    assert parse_pbtxt(format_message(msg)) == msg


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=40))
def test_any_string_survives_and_protobuf_agrees(value: str) -> None:
    text = format_message(Message([("name", value)]))
    assert get_one(parse_pbtxt(text), "name") == value
    assert as_model_config(text).name == value
