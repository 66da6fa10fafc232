"""`cocode top`'s keys as a person finds them: every one in the command palette
(and running its action), the everyday ones in the footer of an 80-column terminal."""

from __future__ import annotations

import asyncio

import pytest

from test_top_snapshots import main_batches, make_app


async def _settled(pilot) -> None:
    for _ in range(200):
        if pilot.app.batches >= 3:
            break
        await pilot.pause(0.02)
    await pilot.pause(0.1)


@pytest.mark.timeout(60)
def test_every_key_is_in_the_palette_and_runs_its_action():
    async def go():
        app = make_app(main_batches())
        async with app.run_test(size=(130, 36)) as pilot:
            await _settled(pilot)
            commands = {c.title: c for c in app.get_system_commands(app.screen)}
            for b in app.BINDINGS:
                if b.action != "quit":
                    assert b.description in commands, f"{b.description} ({b.key}) is not in the palette"
            assert "Quit" in commands  # Textual's own
            search = app.query_one("#search")
            assert not search.display
            await commands["Search"].callback()  # what the palette calls
            await pilot.pause(0.1)
            assert search.display  # the palette's Search opened the pane's search box
    asyncio.run(go())


@pytest.mark.timeout(60)
def test_at_80_columns_the_footer_shows_every_key_up_to_quit():
    async def go():
        app = make_app(main_batches())
        async with app.run_test(size=(80, 24)) as pilot:
            await _settled(pilot)
            keys = {k.description: k.region for k in app.query("FooterKey") if k.description}
            palette = min(k.region.x for k in app.query("FooterKey") if k.has_class("-command-palette"))
            for name in ("Submit", "Cancel run", "Diff", "Say", "Pick", "Search", "Quit"):
                assert keys[name].right <= palette, f"{name} is cut off at 80 columns ({keys[name]})"
    asyncio.run(go())
