"""Captions (WebVTT, SubRip) as timestamped passages, cited '(at mm:ss)', and a video opened at that time."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import make_settings

from assistant.apps.ui.render import cited_media, render_answer
from assistant.core.errors import LoaderError
from assistant.core.settings import Settings
from assistant.core.types import Answer, Citation, Location, format_timestamp
from assistant.index.library import LibraryIndex
from assistant.pilot import CoursePilot
from ingest.loaders import load_document
from ingest.loaders.captions import Cue, merge_cues, parse_srt, parse_vtt
from ingest.pipeline import IngestPipeline

VTT = """WEBVTT - Running a one-to-one

STYLE
::cue { color: yellow }

NOTE this block is a comment
and is skipped

intro
00:00.000 --> 00:03.500 align:start
<v.lead Dana Okafor>Start every one-to-one by asking what is on their mind,

00:03.500 --> 00:07.000
<v Dana Okafor>not with your own agenda.</v> <c.aside>It is their meeting.</c>

00:07.000 --> 00:10.000
<v Sam>What if they have nothing to raise?

01:04:12.250 --> 01:04:16.000
<v Dana Okafor>Then ask about <i>blockers</i> &amp; <b>wins</b> <01:04:13.000>from last week.
"""

SRT = """1
00:00:01,000 --> 00:00:04,000
<i>Close the meeting by agreeing</i>

2
00:00:04,000 --> 00:00:07,500
on one next step each.

3
00:04:12,000 --> 00:04:15,000
NARRATOR: Write it down where both of you can see it.
"""


def test_vtt_cues_keep_speakers_and_drop_markup() -> None:
    title, cues = parse_vtt(VTT)
    assert title == "Running a one-to-one"
    assert [(c.start, c.speaker) for c in cues] == [
        (0.0, "Dana Okafor"),
        (3.5, "Dana Okafor"),
        (7.0, "Sam"),
        (3852.25, "Dana Okafor"),
    ]
    assert cues[1].text == "not with your own agenda. It is their meeting."
    assert cues[-1].text == "Then ask about blockers & wins from last week."
    assert "::cue" not in " ".join(c.text for c in cues) and "comment" not in " ".join(c.text for c in cues)


def test_cues_merge_at_sentence_boundaries_with_speaker_turns() -> None:
    passages = merge_cues(parse_vtt(VTT)[1], target_chars=300)
    assert passages[0] == (
        0.0,
        "Start every one-to-one by asking what is on their mind, not with your own agenda. "
        "It is their meeting.\nWhat if they have nothing to raise?",
    )
    # an hour later: a new passage (at its own time) even though the target size was not reached
    assert passages[1] == (3852.25, "Then ask about blockers & wins from last week.")
    # a full passage ends at the sentence before the next speaker
    assert [p[0] for p in merge_cues(parse_vtt(VTT)[1], target_chars=40)] == [0.0, 7.0, 3852.25]


def test_a_sentence_split_across_cues_is_never_cut() -> None:
    cues = [Cue(float(i), float(i + 1), word) for i, word in enumerate(["The pause", "matters", "here.", "Next."])]
    assert merge_cues(cues, target_chars=5) == [(0.0, "The pause matters here."), (3.0, "Next.")]


def test_srt_cues_and_speaker_labels() -> None:
    cues = parse_srt(SRT)
    assert [c.start for c in cues] == [1.0, 4.0, 252.0]
    assert cues[0].text == "Close the meeting by agreeing"
    assert (cues[2].speaker, cues[2].text) == ("NARRATOR", "Write it down where both of you can see it.")
    assert merge_cues(cues)[0] == (1.0, "Close the meeting by agreeing on one next step each.")


def test_bad_caption_files_name_the_problem(tmp_path: Path) -> None:
    bad = tmp_path / "talk.vtt"
    bad.write_text("00:00.000 --> 00:01.000\nno header\n")
    with pytest.raises(LoaderError) as err:
        load_document(bad)
    assert err.value.reason == "corrupt" and "WEBVTT" in str(err.value)


def test_timestamps_label_citations() -> None:
    loc = Location(course_id="c", course_title="Course", module="m.vtt", module_title="Module", section=("Video",))
    assert loc.model_copy(update={"timestamp": 252.9}).label() == "Course › Module › Video (at 04:12)"
    assert format_timestamp(3852.25) == "1:04:12"
    assert loc.label() == "Course › Module › Video"


def _library(root: Path, with_media: bool) -> Path:
    course = root / "library" / "one-to-ones"
    course.mkdir(parents=True)
    (course / "course.yaml").write_text(
        "id: one-to-ones\ntitle: Running One-to-Ones\nmodules:\n  - path: talk.en.vtt\n    title: The first ten minutes\n"
    )
    (course / "talk.en.vtt").write_text(VTT)
    if with_media:
        (course / "talk.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42")
    return root / "library"


@pytest.mark.parametrize("with_media", [True, False], ids=["media-in-library", "captions-only"])
def test_cited_captions_open_the_video_at_that_time_or_show_the_time(tmp_path: Path, with_media: bool) -> None:
    lib = _library(tmp_path, with_media)
    settings = make_settings(tmp_path, library={"dir": str(lib)})
    report = IngestPipeline(settings).run(lib)
    assert report.ok and report.documents["failed"] == 0, report.files
    answer = CoursePilot(settings).ask("What should I ask about blockers and wins?")
    assert not answer.refused, answer.text
    cited = answer.citations[0]
    assert cited.label == "Running One-to-Ones › The first ten minutes › Running a one-to-one (at 1:04:12)"
    rendered = render_answer(answer, lib, {"one-to-ones": "one-to-ones"})
    videos = [s for s in rendered.sources if s.kind == "video"]
    if with_media:
        assert [(v.module, v.start, v.name) for v in videos] == [("talk.mp4", 3852.25, "talk.mp4 at 1:04:12")]
        assert "Video: talk.mp4 at 1:04:12" in rendered.markdown
        course = CoursePilot(settings).catalogue()["one-to-ones"]
        assert cited_media(course, "talk.mp4", lib) == (lib / "one-to-ones" / "talk.mp4").resolve()
        assert cited_media(course, "course.yaml", lib) is None  # only a caption's companion media is served
    else:
        assert videos == [] and "(at 1:04:12)" in rendered.markdown


def test_media_outside_the_course_folder_is_never_linked(tmp_path: Path) -> None:
    lib = _library(tmp_path, with_media=False)
    (lib / "talk.mp4").write_bytes(b"x")
    loc = Location(
        course_id="one-to-ones",
        course_title="C",
        module="../talk.en.vtt",
        module_title="M",
        timestamp=5.0,
    )
    cite = Citation(key="1", location=loc, label=loc.label(), snippet="s", chunk_id="x")
    answer = Answer(question="q", standalone_question="q", text="t [1]", citations=[cite])
    assert [s for s in render_answer(answer, lib, {}).sources if s.kind == "video"] == []


def test_sample_scorm_course_cites_its_video_captions_with_time(pilot: CoursePilot) -> None:
    """The bundled SCORM package (data/courses/safe-lifting.zip) answers with its own titles and a timestamp."""
    answer = pilot.ask("How far apart should my feet be when I lift a box?")
    assert not answer.refused, answer.text
    cited = answer.citations[0]
    assert cited.location.course_id == "safe-lifting"
    assert (
        cited.label
        == "Safe Lifting and Manual Handling › The lifting technique › Lifting a box from the floor (at 00:52)"
    )
    course = pilot.catalogue()["safe-lifting"]
    assert course.minutes == 60 and "manual handling" in course.skills


LIFTING_VTT = """WEBVTT - Lifting a box

00:00:52.000 --> 00:00:57.500
<v Amara>Now my feet. I stand right up against the box, feet about hip-width apart,

00:00:57.500 --> 00:01:02.000
<v Amara>one foot slightly forward, so I am stable before anything moves.</v>

00:01:02.000 --> 00:01:04.000
<v Luis><i>Laughs</i>

00:01:04.000 --> 00:01:09.000
<v.question Luis>So how far apart do my feet go?
<v Amara>About hip-width, with one foot a little ahead.
"""

# Labels and sound cues written as plain text, the way many caption tools export them.
LABELLED_SRT = """1
00:00:01,000 --> 00:00:04,000
[upbeat music]

2
00:00:04,000 --> 00:00:08,000
AMARA: Keep the load close to your waist for the whole lift.

3
00:00:08,000 --> 00:00:12,000
- Luis: What about twisting?
- Amara: Never twist. Turn your feet instead. (laughs)

4
00:00:12,000 --> 00:00:17,000
[Amara] Take a note: the warm-up starts at 10:30 sharp.

5
00:00:17,000 --> 00:00:21,000
>> NARRATOR: Note: gloves are kept by the bench. ♪
"""


def _caption_course(tmp_path: Path, files: dict[str, str]) -> tuple[Settings, list[str]]:
    """Ingest one course of caption files; the settings and every indexed chunk text."""
    course = tmp_path / "library" / "lifting"
    course.mkdir(parents=True)
    (course / "course.yaml").write_text("id: lifting\ntitle: Lifting Safely\n")
    for name, text in files.items():
        (course / name).write_text(text, encoding="utf-8")
    settings = make_settings(tmp_path, library={"dir": str(course.parent)})
    report = IngestPipeline(settings).run(course.parent)
    assert report.ok and report.documents["failed"] == 0, report.files
    ledger = LibraryIndex(settings).ledger
    return settings, [c.text for c in ledger.get_chunks(ledger.all_chunk_ids()).values()]


def test_voice_span_speakers_are_not_quoted_as_answers(tmp_path: Path) -> None:
    settings, texts = _caption_course(tmp_path, {"lifting-a-box.vtt": LIFTING_VTT})
    indexed = "\n".join(texts)
    assert "Amara" not in indexed and "Luis" not in indexed and "Laughs" not in indexed, indexed
    assert "Now my feet. I stand right up against the box, feet about hip-width apart," in indexed
    answer = CoursePilot(settings).ask("How far apart should my feet be when I lift a box?")
    assert not answer.refused, answer.text
    assert "hip-width" in answer.text and "Amara" not in answer.text and "Luis" not in answer.text, answer.text


def test_plain_speaker_labels_and_sound_cues_leave_the_indexed_text(tmp_path: Path) -> None:
    settings, texts = _caption_course(tmp_path, {"lifting-basics.srt": LABELLED_SRT})
    indexed = " ".join(" ".join(texts).split())
    assert indexed == (
        "Keep the load close to your waist for the whole lift. What about twisting? Never twist. Turn your feet "
        "instead. Take a note: the warm-up starts at 10:30 sharp. Note: gloves are kept by the bench."
    )
    answer = CoursePilot(settings).ask("Where do I keep the load when I lift it?")
    assert not answer.refused, answer.text
    assert "Keep the load close to your waist" in answer.text and "AMARA" not in answer.text, answer.text
