"""The shape of an extractive answer: a sentence that announces a list comes with its list, an answer does not open
on "He" or "This", nor quote what a module covers, and lists are read as PDFs and Word files lay them out."""

from __future__ import annotations

import re

import pytest
from conftest import ingest_courses
from fake_openai import FakeOpenAIServer, Reply

from assistant.answering.extractive import passage_units
from assistant.core.settings import Settings
from assistant.pilot import CoursePilot

GOALS = """# Goals and performance

## Writing clear goals

A goal that cannot be checked is a wish. Every goal you write should pass one test of clarity:

- Specific: it says exactly what will be different.
- Measurable: you can tell whether it has been achieved, with a number or a clear yes or no.
- Achievable: it is stretching but realistic with the time and resources available.
- Relevant: it supports the priorities of the team and of the organisation.
- Time-bound: it has a deadline.

Write goals together with the person rather than handing them down.

## A theory from two traditions

Staff turnover was low in the firms he studied for a decade. William Ouchi, a management scholar in California,
proposed a theory that combines American and Japanese business practices. He calls it Theory Z. Theory Z
stresses long-term employment, slow promotion and collective decisions.

## Qualities of good money

For money to be a suitable means of exchange, it should have these key characteristics:

- Scarcity: money should be scarce enough to have some value. Pebbles would not work as money because they are
  everywhere. Too much money in circulation increases prices. Governments limit the quantity in circulation.
- Durability: any item used as money must be durable. A banana becomes useless as money when it spoils. Even
  early societies used metal coins, which lasted for a long time and could be stored safely for years.
- Portability: money must be easily moved around. Boulders or heavy gold bars cannot be carried easily from
  place to place, which is why light coins and paper notes took their place in every market town.
- Divisibility: money must be capable of being divided into smaller parts. Divisible forms of money make
  transactions of every size possible, from buying a loaf of bread to buying a house or a ship.
"""


PIVOTS = """# Building your first pivot table

A pivot table summarises a long list by categories without a single formula. This module walks through
preparing the data, creating a pivot table and controlling what it shows.

## Inserting the pivot table

Click any cell in your data, then choose Insert, then PivotTable. Excel selects the whole table and proposes
a new worksheet for the pivot table. Click OK and drag fields into the Rows and Values areas.
"""


PRIVACY = """# What counts as personal data

## Special category data

Some types of personal data are especially sensitive because misuse could lead to discrimination. The GDPR
calls them special category data and allows them to be used only under stricter conditions. They are:

- racial or ethnic origin
- political opinions
- religious beliefs
"""


LISTENING = """# Powerful questions and listening

## Three levels of listening

The Co-Active coaching approach describes three levels of listening, a way to notice where your attention is.

### Level 1: internal listening

Your attention is on yourself: your own opinions and what you will say next. It leads to advice.

### Level 2: focused listening

Your attention is entirely on the other person: their words and what they leave out.

### Level 3: global listening

You take in everything around the words: tone of voice, pace, energy and body language.
"""


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    files = {
        ("goals", "Goals", "01-goals.md"): GOALS,
        ("pivots", "Pivot Tables", "01-first-pivot.md"): PIVOTS,
        ("privacy", "Data Privacy", "01-personal-data.md"): PRIVACY,
        ("coaching", "Coaching", "03-listening.md"): LISTENING,
    }
    return ingest_courses(tmp_path_factory.mktemp("lists"), files)


def lines(text: str) -> list[str]:
    body = text.split("\n\nRead next:")[0]
    return [re.sub(r"\s*\[\d+\]$", "", line) for line in body.splitlines()]


def test_a_sentence_that_announces_a_list_is_quoted_with_its_list(library: Settings) -> None:
    """The answer ended on "...one test of clarity:" and left out the five criteria it announced."""
    answer = CoursePilot(library).ask("What test of clarity should every goal pass?")
    assert not answer.refused, answer.text
    quoted = lines(answer.text)
    assert any(line.endswith("one test of clarity:") for line in quoted), quoted
    items = [line.split(":")[0] for line in quoted if line.startswith("- ")]
    assert items == ["- Specific", "- Measurable", "- Achievable", "- Relevant", "- Time-bound"]


def test_a_sentence_followed_by_a_short_lead_in_is_quoted_with_the_list(library: Settings) -> None:
    """ "They are:" (two words) and "political opinions" (a two-word item) were dropped as fragments, so the
    answer stopped before the list it was about."""
    answer = CoursePilot(library).ask("What is special category data under the GDPR?")
    quoted = lines(answer.text)
    assert quoted[0].startswith("Some types of personal data are especially sensitive"), quoted  # who "them" are
    assert "They are:" in quoted, quoted
    assert [line for line in quoted if line.startswith("- ")] == [
        "- racial or ethnic origin",
        "- political opinions",
        "- religious beliefs",
    ]


def test_a_short_introduction_is_quoted_with_the_subsections_it_announces(library: Settings) -> None:
    """ "What are the three levels of listening?" got only "...describes three levels of listening...": the levels
    are the section's subsections, and retrieval had not ranked them near their introduction."""
    answer = CoursePilot(library).ask("What are the three levels of listening?")
    quoted = lines(answer.text)
    assert quoted[0].startswith("The Co-Active coaching approach describes three levels"), quoted
    assert [line.split(".")[0] for line in quoted[1:]] == [
        "- Level 1: internal listening",
        "- Level 2: focused listening",
        "- Level 3: global listening",
    ]
    sections = [c.location.section[-1] for c in answer.citations]
    assert sections == ["Three levels of listening", *(line[2:].split(".")[0] for line in quoted[1:])]


def test_a_configured_model_reads_the_subsections_too(library: Settings, fake_openai: FakeOpenAIServer) -> None:
    chat = {"provider": "openai", "base_url": fake_openai.base_url, "api_key": "sk-test", "model": "fake"}
    pilot = CoursePilot(library.model_copy(update={"chat": library.chat.model_copy(update=chat)}))
    keys = " ".join(f"[S{n}]" for n in range(1, 13))  # a key with no passage behind it is dropped
    fake_openai.script(Reply.answer(f"Internal, focused and global listening {keys}."))
    answer = pilot.ask("What are the three levels of listening?")
    user = fake_openai.last_request["body"]["messages"][1]["content"]
    assert user.count("<evidence key=") == len(answer.evidence)
    for text in ("Your attention is on yourself", "entirely on the other person", "tone of voice"):
        assert text in user
    cited = [c.location.section[-1] for c in answer.citations]
    assert cited[-3:] == ["Level 1: internal listening", "Level 2: focused listening", "Level 3: global listening"]


def test_a_list_cut_by_a_page_break_goes_on_in_the_next_passage(pilot: CoursePilot) -> None:
    """The sample library's PDF lists the special categories of personal data over two pages: the answer stopped
    at page 1's last item ("religious or philosophical beliefs") and left out health and biometric data."""
    answer = pilot.ask("What counts as special category data under GDPR?")
    quoted = lines(answer.text)
    assert "- religious or philosophical beliefs" in quoted and "- trade union membership" in quoted, quoted
    assert any(line.startswith("- data concerning health") for line in quoted), quoted
    pages = [c.location.page for c in answer.citations]
    assert pages == [1, 2], pages  # each item cites the page it is on


def test_a_long_list_quotes_the_first_sentence_of_each_item(library: Settings) -> None:
    answer = CoursePilot(library).ask("What characteristics should money have to be a suitable means of exchange?")
    quoted = lines(answer.text)
    items = [line for line in quoted if line.startswith("- ")]
    assert [i.split(":")[0] for i in items] == ["- Scarcity", "- Durability", "- Portability", "- Divisibility"]
    assert items[0] == "- Scarcity: money should be scarce enough to have some value."
    assert all(len(re.findall(r"[.!?](\s|$)", i)) == 1 for i in items), items


def test_an_answer_does_not_open_on_a_word_pointing_back(library: Settings) -> None:
    """It opened "He calls it Theory Z.": who calls it that is the sentence before."""
    answer = CoursePilot(library).ask("What is Theory Z?")
    quoted = lines(answer.text)
    assert quoted[0].startswith("William Ouchi, a management scholar"), quoted


def test_what_a_module_covers_is_not_quoted_as_an_answer(library: Settings) -> None:
    """ "How do I create a pivot table?" was answered with "This module walks through preparing the data, creating
    a pivot table and controlling what it shows." """
    pilot = CoursePilot(library)
    answer = pilot.ask("How do I create a pivot table?")
    assert not answer.refused, answer.text
    assert "This module walks through" not in answer.text
    assert "Insert, then PivotTable" in answer.text
    assert "This module walks through" in pilot.ask("What does this module on pivot tables cover?").text


def test_passage_units_read_lone_bullets_wrapped_colons_and_the_paragraph_after_a_list() -> None:
    # A PDF's bullet glyph on a line of its own (a DEL or a symbol font's private-use character) begins an item.
    text = "It has four traits:\n\x7f\nScarcity: it is scarce.\n\uf0b7\nDurability: it lasts."
    assert passage_units(text) == [
        ("It has four traits:", False),
        ("- Scarcity: it is scarce.", True),
        ("- Durability: it lasts.", True),
    ]
    # A line broken after a colon in mid-sentence is one sentence.
    assert passage_units("It removes the two things that go wrong:\nvagueness and judgement. Then it ends.") == [
        ("It removes the two things that go wrong: vagueness and judgement.", False),
        ("Then it ends.", False),
    ]
    # The paragraph after a list's last item is not that item's rest.
    assert passage_units("- How to distribute goods to consumers\nManagers must adapt. They do.") == [
        ("- How to distribute goods to consumers", True),
        ("Managers must adapt.", False),
        ("They do.", False),
    ]


def test_lists_with_symbol_font_bullets_are_items() -> None:
    assert passage_units("\uf0b7 Open the portal.\n\u25aa Enter the hours.") == [
        ("\uf0b7 Open the portal.", True),
        ("\u25aa Enter the hours.", True),
    ]


def test_each_row_of_a_table_is_a_unit_of_its_own() -> None:
    # The loaders render a table row as "Header: cell; Header: cell". A row whose last cell ends without a full
    # stop was read as a line the layout wrapped, so a table's rows ran into one paragraph too long to quote.
    from ingest.loaders import render_table

    table = render_table(
        [
            ["Item", "What to agree", "Example"],
            ["Goals", "What the mentee wants to develop", "Prepare for a first team lead role"],
            ["Confidentiality", "What stays between you", "Everything stays private unless both agree"],
        ]
    )
    units = passage_units(f"A mentoring agreement is half a page.\n{table}\nIt is not a contract.")
    assert units == [
        ("A mentoring agreement is half a page.", False),
        (
            "Item: Goals; What to agree: What the mentee wants to develop; Example: Prepare for a first team lead role",
            True,
        ),
        (
            "Item: Confidentiality; What to agree: What stays between you; Example: Everything stays private unless both agree",
            True,
        ),
        ("It is not a contract.", False),
    ]
    # Prose with one colon is still prose, and a wrapped line still joins the line it continues.
    assert passage_units("Note: lift with your legs\nand keep your back straight.") == [
        ("Note: lift with your legs and keep your back straight.", False)
    ]
