"""Job sidecars (issue 4): valid ones parse, anything else is JobError(E_BAD_SIDECAR)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from daemon.errors import ErrorCode, JobError
from daemon.records import JobOptions
from daemon.intake.sidecar import (
    MAX_JOB_ID_CHARS,
    MAX_METADATA_BYTES,
    MAX_METADATA_DEPTH,
    MAX_SIDECAR_BYTES,
    JobSidecar,
    SidecarOptions,
    parse_sidecar,
    read_sidecar,
    video_name_for_sidecar,
)
from daemon.paths import sidecar_path_for

ROOTS = ("C:\\Users\\coach\\uploads", "/home/posed/inbox")
DISTRO = "Ubuntu"


def parse(document: object) -> JobSidecar:
    raw = document if isinstance(document, (bytes, str)) else json.dumps(document)
    return parse_sidecar(raw, ROOTS, distro=DISTRO)


def refused(document: object) -> JobError:
    with pytest.raises(JobError) as caught:
        parse(document)
    assert caught.value.code is ErrorCode.BAD_SIDECAR
    assert caught.value.stage == "sidecar"
    return caught.value


def test_full_sidecar_parses_into_a_frozen_value() -> None:
    sidecar = parse(
        {
            "job_id": "upload-4711",
            "options": {"start_frame": 10, "end_frame": 300, "include_mesh": True, "backend": "phalp", "priority": 5},
            "metadata": {"user": 12, "tags": ["sprint", "100m"], "nested": {"a": None}},
            "input_path": "C:\\Users\\coach\\uploads\\run 1.mp4",
        }
    )
    assert sidecar == JobSidecar(
        job_id="upload-4711",
        options=SidecarOptions(start_frame=10, end_frame=300, include_mesh=True, backend="phalp", priority=5),
        metadata={"user": 12, "tags": ["sprint", "100m"], "nested": {"a": None}},
        input_path="/mnt/c/Users/coach/uploads/run 1.mp4",
        input_windows_path="C:\\Users\\coach\\uploads\\run 1.mp4",
    )
    with pytest.raises(AttributeError):
        sidecar.job_id = "other"  # type: ignore[misc]
    assert sidecar.client_echo() == {"job_id": "upload-4711", "metadata": sidecar.metadata}


def test_empty_object_means_all_defaults() -> None:
    sidecar = parse({})
    assert sidecar == JobSidecar()
    assert sidecar.client_echo() == {"job_id": None, "metadata": None}
    assert sidecar.job_options(JobOptions(low_memory=True, start_frame=2)) == JobOptions(low_memory=True, start_frame=2)


def test_null_values_mean_absent() -> None:
    assert parse({"job_id": None, "options": None, "metadata": None, "input_path": None}) == JobSidecar()
    assert parse({"options": {"start_frame": None, "priority": None}}).options == SidecarOptions()


def test_sidecar_options_override_the_defaults() -> None:
    sidecar = parse({"options": {"start_frame": 5, "include_mesh": True}})
    merged = sidecar.job_options(JobOptions(low_memory=True, end_frame=50))
    assert merged == JobOptions(low_memory=True, include_mesh=True, start_frame=5, end_frame=50)


def test_a_start_frame_past_the_default_end_frame_is_refused_when_merging() -> None:
    sidecar = parse({"options": {"start_frame": 60}})
    with pytest.raises(JobError, match="end_frame"):
        sidecar.job_options(JobOptions(end_frame=50))


def test_a_wsl_form_input_path_is_accepted_and_reported_both_ways() -> None:
    sidecar = parse({"input_path": "/home/posed/inbox/a.mp4"})
    assert sidecar.input_path == "/home/posed/inbox/a.mp4"
    assert sidecar.input_windows_path == "\\\\wsl$\\Ubuntu\\home\\posed\\inbox\\a.mp4"


@pytest.mark.parametrize(
    "raw",
    [
        b'\xef\xbb\xbf{"job_id": "bom-1"}',  # Notepad / PowerShell 7 UTF-8 BOM
        '{"job_id": "bom-1"}'.encode("utf-16"),  # PowerShell 5 Out-File: UTF-16 LE with BOM
        '{"job_id": "bom-1"}',
    ],
)
def test_utf8_bom_utf16_and_text_are_all_read(raw: bytes | str) -> None:
    assert parse(raw).job_id == "bom-1"


@pytest.mark.parametrize(
    ("document", "field", "words"),
    [
        (b"", None, "not valid JSON"),
        (b"{", None, "not valid JSON"),
        (b"\xff\xfe\xfa", None, "not valid JSON"),
        (b"[1, 2]", None, "JSON object, got an array"),
        (b'"job"', None, "got a string"),
        (b"null", None, "got null"),
        (b'{"job_id": NaN}', None, "NaN"),
        (b'{"metadata": {"a": Infinity}}', None, "Infinity"),
        (b'{"job_id": "a", "job_id": "b"}', None, "twice"),
        (b"[" * 50_000 + b"]" * 50_000, None, "nested too deeply"),
        (b" " * (MAX_SIDECAR_BYTES + 1), None, "larger than"),
        ({"jobid": "a"}, "jobid", "unknown key"),
        ({"job_id": "a", "extra": 1, "more": 2}, "extra", "'extra', 'more'"),
        ({"options": {"start_fame": 1}}, "options.start_fame", "unknown key"),
        ({"job_id": 42}, "job_id", "must be a string"),
        ({"job_id": ""}, "job_id", "1 to 128"),
        ({"job_id": "a" * (MAX_JOB_ID_CHARS + 1)}, "job_id", "1 to 128"),
        ({"job_id": "../../etc/passwd"}, "job_id", "may hold only"),
        ({"job_id": "a/b"}, "job_id", "may hold only"),
        ({"job_id": "a\\b"}, "job_id", "may hold only"),
        ({"job_id": ".hidden"}, "job_id", "may hold only"),
        ({"job_id": "-rf"}, "job_id", "may hold only"),
        ({"job_id": "ends."}, "job_id", "may hold only"),
        ({"job_id": "a~2"}, "job_id", "may hold only"),
        ({"job_id": "with space"}, "job_id", "may hold only"),
        ({"job_id": "name\n"}, "job_id", "may hold only"),
        ({"job_id": "läufer"}, "job_id", "may hold only"),
        ({"job_id": "CON"}, "job_id", "device name"),
        ({"job_id": "lpt1.report"}, "job_id", "device name"),
        ({"options": []}, "options", "JSON object"),
        ({"options": {"start_frame": "5"}}, "options.start_frame", "integer, got a string"),
        ({"options": {"start_frame": 5.0}}, "options.start_frame", "integer, got a number"),
        ({"options": {"start_frame": True}}, "options.start_frame", "integer, got a boolean"),
        ({"options": {"start_frame": -1}}, "options.start_frame", "between 0 and"),
        ({"options": {"end_frame": 0}}, "options.end_frame", "between 1 and"),
        ({"options": {"start_frame": 10, "end_frame": 10}}, "options.end_frame", "greater than"),
        ({"options": {"start_frame": 10**12}}, "options.start_frame", "between"),
        ({"options": {"include_mesh": "yes"}}, "options.include_mesh", "true or false"),
        ({"options": {"include_mesh": 1}}, "options.include_mesh", "true or false"),
        ({"options": {"backend": "PHALP!"}}, "options.backend", "backend name"),
        ({"options": {"backend": 3}}, "options.backend", "backend name"),
        ({"options": {"backend": "phalp\n"}}, "options.backend", "backend name"),
        ({"options": {"priority": 2**21 + 1}}, "options.priority", "between 0 and 2097152"),
        ({"options": {"priority": -1}}, "options.priority", "between 0 and 2097152"),
        ({"options": {"priority": "high"}}, "options.priority", "integer"),
        ({"metadata": [1, 2]}, "metadata", "JSON object, got an array"),
        ({"metadata": "text"}, "metadata", "JSON object, got a string"),
        ({"metadata": {"blob": "x" * MAX_METADATA_BYTES}}, "metadata", "at most 65536"),
        (b'{"metadata": {"big": 1e400}}', "metadata", "too large"),
        (b'{"metadata": {"s": "\\ud800"}}', "metadata", "surrogate"),
        ({"input_path": 7}, "input_path", "must be a string"),
        ({"input_path": "relative/a.mp4"}, "input_path", "relative"),
        ({"input_path": "C:\\Users\\coach\\uploads\\..\\secret.mp4"}, "input_path", "'..'"),
        ({"input_path": "C:\\Windows\\win.ini"}, "input_path", "outside the allowed roots"),
        ({"input_path": "\\\\fileserver\\share\\a.mp4"}, "input_path", "UNC server"),
        ({"input_path": "/home/posed/inbox/a\u0000.mp4"}, "input_path", "NUL"),
    ],
)
def test_invalid_sidecars_are_refused_naming_the_field(document: object, field: str | None, words: str) -> None:
    error = refused(document)
    assert words in error.message
    assert error.details == {"field": field}
    if field is not None:
        assert field in error.message
    assert error.to_dict()["code"] == "E_BAD_SIDECAR"


def test_metadata_just_under_the_cap_is_echoed_unchanged() -> None:
    metadata = {"blob": "é" * ((MAX_METADATA_BYTES - 20) // 2)}
    assert parse({"metadata": metadata}).metadata == metadata


def _nested(depth: int) -> dict:
    value: object = 1
    for _ in range(depth):
        value = {"k": value}
    return value  # type: ignore[return-value]


def test_metadata_nesting_has_a_stated_limit_the_node_client_checks_too() -> None:
    assert parse({"metadata": _nested(MAX_METADATA_DEPTH)}).metadata == _nested(MAX_METADATA_DEPTH)
    error = refused({"metadata": _nested(MAX_METADATA_DEPTH + 1)})
    assert error.details == {"field": "metadata"} and f"more than {MAX_METADATA_DEPTH} levels" in error.message
    error = refused({"metadata": {"a": [[[_nested(MAX_METADATA_DEPTH)]]]}})  # arrays count as levels too
    assert error.details == {"field": "metadata"}


def test_read_sidecar_names_the_file_in_the_message(tmp_path: Path) -> None:
    path = tmp_path / "abc.mp4.job.json"
    path.write_text('{"options": {"priority": "x"}}', encoding="utf-8")
    with pytest.raises(JobError, match=r"^abc\.mp4\.job\.json: job sidecar: options\.priority") as caught:
        read_sidecar(path, ROOTS, distro=DISTRO)
    assert str(caught.value) == caught.value.message


def test_read_sidecar_reads_a_valid_file(tmp_path: Path) -> None:
    path = sidecar_path_for(tmp_path / "abc.mp4")
    path.write_text('{"job_id": "j-1", "metadata": {"k": "v"}}', encoding="utf-8")
    assert read_sidecar(path, ROOTS, distro=DISTRO) == JobSidecar(job_id="j-1", metadata={"k": "v"})


def test_read_sidecar_leaves_io_errors_to_the_caller(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        read_sidecar(tmp_path / "gone.mp4.job.json", ROOTS)


def test_sidecar_names_pair_with_video_names() -> None:
    assert sidecar_path_for(Path("/in/abc.mp4")) == Path("/in/abc.mp4.job.json")
    assert video_name_for_sidecar("abc.mp4.job.json") == "abc.mp4"
    assert video_name_for_sidecar("abc.mp4") is None
    assert video_name_for_sidecar(".job.json") is None


# --- fuzzing: nothing but JobError ever escapes -------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=20,
)
near_valid = st.fixed_dictionaries(
    {},
    optional={
        "job_id": st.one_of(st.text(max_size=140), json_values),
        "options": st.one_of(
            json_values,
            st.fixed_dictionaries(
                {},
                optional={
                    "start_frame": json_values,
                    "end_frame": json_values,
                    "include_mesh": json_values,
                    "backend": st.one_of(st.text(max_size=40), json_values),
                    "priority": json_values,
                },
            ),
        ),
        "metadata": json_values,
        "input_path": st.one_of(st.text(max_size=60), st.sampled_from(["C:\\Users\\coach\\uploads\\a.mp4", "/home/posed/inbox/b.mp4"])),
    },
)


def _parse_or_bad_sidecar(raw: bytes | str) -> None:
    try:
        sidecar = parse_sidecar(raw, ROOTS, distro=DISTRO)
    except JobError as exc:
        assert exc.code is ErrorCode.BAD_SIDECAR
        return
    # Whatever is accepted can be written back into a result document.
    json.dumps(sidecar.client_echo(), allow_nan=False, ensure_ascii=False).encode("utf-8")


@settings(max_examples=300, deadline=None)
@given(near_valid)
def test_fuzzed_documents_parse_or_raise_job_error(document: dict) -> None:
    _parse_or_bad_sidecar(json.dumps(document))


@settings(max_examples=200, deadline=None)
@given(json_values)
def test_fuzzed_json_values_parse_or_raise_job_error(value: object) -> None:
    _parse_or_bad_sidecar(json.dumps(value))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200) | st.text(max_size=200))
def test_fuzzed_bytes_parse_or_raise_job_error(raw: bytes | str) -> None:
    _parse_or_bad_sidecar(raw)
