"""The hybrid logical clock: wire form, ordering, send/receive rules, skew handling."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from waystation.core.errors import ValidationError
from waystation.core.hlc import HLC, MAX_COUNTER, MAX_WALL, Clock, is_too_far_ahead

T0 = 1_764_496_800_000  # 2025-11-30T10:00:00Z
HOUR = 3_600_000
NODE_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-"

walls = st.integers(min_value=0, max_value=MAX_WALL)
counters = st.integers(min_value=0, max_value=MAX_COUNTER)
nodes = st.text(alphabet=NODE_CHARS, min_size=1, max_size=64)
hlcs = st.builds(HLC, walls, counters, nodes)


class FakeWall:
    """A wall clock the test sets by hand (it may run backwards)."""

    def __init__(self, ms: int) -> None:
        self.ms = ms

    def __call__(self) -> int:
        return self.ms


# --- wire form -----------------------------------------------------------------------------


def test_wire_form_matches_the_protocol_example() -> None:
    assert str(HLC(T0, 0, "d-7f3a")) == "001764496800000-00000-d-7f3a"
    assert HLC.parse("001764496800000-00042-d-7f3a") == HLC(T0, 42, "d-7f3a")


@settings(max_examples=300)
@given(hlcs)
def test_parse_and_format_round_trip(clock: HLC) -> None:
    text = str(clock)
    assert len(text) == 15 + 1 + 5 + 1 + len(clock.node)
    assert HLC.parse(text) == clock
    assert str(HLC.parse(text)) == text


@settings(max_examples=300)
@given(hlcs, hlcs)
def test_string_order_is_clock_order(a: HLC, b: HLC) -> None:
    assert (str(a) < str(b)) == (a < b)
    assert (str(a) == str(b)) == (a == b)


@settings(max_examples=200)
@given(st.lists(hlcs, max_size=20))
def test_sorting_wire_strings_sorts_clocks(clocks: list[HLC]) -> None:
    assert sorted(str(c) for c in clocks) == [str(c) for c in sorted(clocks)]


def test_order_is_wall_then_counter_then_node() -> None:
    assert HLC(T0, 99_999, "z") < HLC(T0 + 1, 0, "a")
    assert HLC(T0, 1, "z") < HLC(T0, 2, "a")
    assert HLC(T0, 1, "a") < HLC(T0, 1, "b")


@pytest.mark.parametrize(
    "text",
    [
        "",
        "1764496800000-00000-n",  # wall not padded to 15 digits
        "0001764496800000-00000-n",  # 16 digits
        "001764496800000-0000-n",  # counter of 4 digits
        "001764496800000-000000-n",  # counter of 6 digits
        "001764496800000-00000-",  # no node
        "001764496800000-00000",
        "001764496800000-00000-" + "n" * 65,  # node too long
        "001764496800000-00000-d.1",
        "001764496800000-00000-d 1",
        "001764496800000-00000-dé",
        "001764496800000_00000_n",
        " 001764496800000-00000-n",
        "001764496800000-00000-n\n",
        "-01764496800000-00000-n",
        "00176449680000a-00000-n",
        "001764496800000--0001-n",
    ],
)
def test_malformed_wire_strings_are_validation_errors(text: str) -> None:
    with pytest.raises(ValidationError) as info:
        HLC.parse(text)
    assert info.value.code == "VALIDATION_ERROR"
    assert info.value.details == {"field": "hlc"}
    assert repr(text) in info.value.message


@pytest.mark.parametrize("value", [None, T0, b"001764496800000-00000-n"])
def test_non_string_hlc_is_a_validation_error(value: object) -> None:
    with pytest.raises(ValidationError) as info:
        HLC.parse(value)  # type: ignore[arg-type]
    assert info.value.details == {"field": "hlc"}


def test_validation_error_names_the_field_given() -> None:
    with pytest.raises(ValidationError) as info:
        HLC.parse("yesterday", field="changes.3.hlc")
    assert info.value.details == {"field": "changes.3.hlc"}
    assert info.value.to_body()["error"]["details"]["field"] == "changes.3.hlc"


@pytest.mark.parametrize(
    "text",
    [
        "\u0660" * 15 + "-00000-n",  # Arabic-Indic digits
        "\uff10" * 15 + "-\uff10\uff10\uff10\uff10\uff11-n",  # full-width digits
        "001764496800000-0000\u0661-n",
    ],
    ids=["arabic-indic", "full-width", "one-arabic-indic-digit"],
)
def test_only_ascii_digits_are_accepted(text: str) -> None:
    """The wire form is ASCII: non-ASCII digits would break 'string order == clock order'."""
    with pytest.raises(ValidationError):
        HLC.parse(text)


def test_next_tick_moves_to_next_millisecond_past_the_last_counter() -> None:
    assert HLC(T0, 7, "n").next_tick() == HLC(T0, 8, "n")
    assert HLC(T0, MAX_COUNTER, "n").next_tick() == HLC(T0 + 1, 0, "n")


# --- the clock -----------------------------------------------------------------------------


@pytest.mark.parametrize("node", ["", "a b", "d.1", "x" * 65, "dé"])
def test_clock_refuses_a_node_id_outside_the_wire_alphabet(node: str) -> None:
    with pytest.raises(ValueError, match="node id"):
        Clock(node)


def test_send_uses_the_wall_clock_when_it_advances() -> None:
    wall = FakeWall(T0)
    clock = Clock("d-1", now_ms=wall)
    assert clock.send() == HLC(T0, 0, "d-1")
    assert clock.send() == HLC(T0, 1, "d-1")
    wall.ms = T0 + 5
    assert clock.send() == HLC(T0 + 5, 0, "d-1")
    assert clock.last == HLC(T0 + 5, 0, "d-1")


def test_send_keeps_increasing_when_the_wall_clock_goes_backwards() -> None:
    wall = FakeWall(T0)
    clock = Clock("d-1", now_ms=wall)
    first = clock.send()
    wall.ms = T0 - HOUR  # the device's clock was set back an hour
    second = clock.send()
    third = clock.send()
    assert first < second < third
    assert second == HLC(T0, 1, "d-1")


@settings(max_examples=300)
@given(
    st.lists(
        st.tuples(
            st.integers(min_value=T0 - HOUR, max_value=T0 + HOUR),  # wall reading
            st.none()
            | st.builds(  # None: send(); otherwise receive(remote)
                HLC,
                st.integers(min_value=T0 - HOUR, max_value=T0 + HOUR),
                st.sampled_from([0, 1, MAX_COUNTER - 1, MAX_COUNTER]),
                st.sampled_from(["d-2", "srv"]),
            ),
        ),
        min_size=1,
        max_size=40,
    )
)
def test_clock_is_strictly_increasing_whatever_the_wall_clock_does(
    steps: list[tuple[int, HLC | None]],
) -> None:
    wall = FakeWall(steps[0][0])
    clock = Clock("d-1", now_ms=wall)
    previous = clock.last
    for reading, remote in steps:
        wall.ms = reading
        stamp = clock.send() if remote is None else clock.receive(remote)
        assert stamp > previous
        assert stamp.node == "d-1"
        assert stamp.wall >= reading
        assert 0 <= stamp.counter <= MAX_COUNTER
        assert len(str(stamp)) == 15 + 1 + 5 + 1 + 3
        if remote is not None:
            assert stamp > remote
            assert (stamp.wall, stamp.counter) > (remote.wall, remote.counter)
        assert clock.last == stamp
        previous = stamp


def test_receive_jumps_to_a_remote_clock_ahead_of_ours() -> None:
    clock = Clock("d-1", now_ms=FakeWall(T0))
    clock.send()
    remote = HLC(T0 + 1000, 7, "srv")
    assert clock.receive(remote) == HLC(T0 + 1000, 8, "d-1")


def test_receive_of_an_older_remote_ticks_our_own_clock() -> None:
    wall = FakeWall(T0)
    clock = Clock("d-1", now_ms=wall)
    clock.send()
    clock.send()  # (T0, 1)
    wall.ms = T0 - 10
    assert clock.receive(HLC(T0 - 500, 99, "srv")) == HLC(T0, 2, "d-1")


def test_receive_with_equal_walls_takes_the_larger_counter() -> None:
    clock = Clock("d-1", now_ms=FakeWall(T0 - 10), last=HLC(T0, 3, "d-1"))
    assert clock.receive(HLC(T0, 40, "srv")) == HLC(T0, 41, "d-1")
    clock = Clock("d-1", now_ms=FakeWall(T0 - 10), last=HLC(T0, 40, "d-1"))
    assert clock.receive(HLC(T0, 3, "srv")) == HLC(T0, 41, "d-1")


def test_receive_when_our_wall_clock_is_ahead_of_both() -> None:
    clock = Clock("d-1", now_ms=FakeWall(T0 + 50), last=HLC(T0, 3, "d-1"))
    assert clock.receive(HLC(T0 + 10, 9, "srv")) == HLC(T0 + 50, 0, "d-1")


def test_send_overflowing_the_counter_moves_to_the_next_millisecond() -> None:
    clock = Clock("d-1", now_ms=FakeWall(T0), last=HLC(T0, MAX_COUNTER - 1, "d-1"))
    assert clock.send() == HLC(T0, MAX_COUNTER, "d-1")
    after = clock.send()
    assert after == HLC(T0 + 1, 0, "d-1")
    assert str(after) == "001764496800001-00000-d-1"


def test_receive_overflowing_the_counter_moves_to_the_next_millisecond() -> None:
    for last in (HLC(T0, 5, "d-1"), HLC(T0, MAX_COUNTER, "d-1")):
        clock = Clock("d-1", now_ms=FakeWall(T0), last=last)
        remote = HLC(T0, MAX_COUNTER, "srv")
        stamp = clock.receive(remote)
        assert stamp == HLC(T0 + 1, 0, "d-1")
        assert stamp > remote
    # the remote alone is at the last counter of a millisecond ahead of ours
    clock = Clock("d-1", now_ms=FakeWall(T0), last=HLC(T0 - 3, 0, "d-1"))
    assert clock.receive(HLC(T0 + 4, MAX_COUNTER, "srv")) == HLC(T0 + 5, 0, "d-1")


def test_a_burst_of_sends_in_one_millisecond_stays_ordered_across_the_overflow() -> None:
    clock = Clock("d-1", now_ms=FakeWall(T0), last=HLC(T0, MAX_COUNTER - 10, "d-1"))
    stamps = [clock.send() for _ in range(30)]
    assert stamps == sorted(stamps)
    assert len(set(stamps)) == 30
    assert [str(s) for s in stamps] == sorted(str(s) for s in stamps)
    assert {s.wall for s in stamps} == {T0, T0 + 1}


def test_a_restarted_clock_never_issues_a_smaller_value() -> None:
    persisted = HLC(T0 + HOUR, 12, "old-node-name")
    clock = Clock("srv", now_ms=FakeWall(T0), last=persisted)
    stamp = clock.send()
    assert stamp == HLC(T0 + HOUR, 13, "srv")


# --- skew ----------------------------------------------------------------------------------


def test_is_too_far_ahead_only_beyond_the_allowed_skew() -> None:
    skew = 5 * 60 * 1000
    assert not is_too_far_ahead(HLC(T0 - HOUR, 0, "d"), T0, skew)
    assert not is_too_far_ahead(HLC(T0, 0, "d"), T0, skew)
    assert not is_too_far_ahead(HLC(T0 + skew, MAX_COUNTER, "d"), T0, skew)
    assert is_too_far_ahead(HLC(T0 + skew + 1, 0, "d"), T0, skew)
    assert is_too_far_ahead(HLC(T0 + 365 * 24 * HOUR, 0, "d"), T0, skew)


def _round_trip(clock: Clock, wall: FakeWall, server: HLC, rtt: int) -> None:
    sent = wall.ms
    wall.ms += rtt
    clock.observe_server_time(server, sent_at_ms=sent, received_at_ms=wall.ms)


@pytest.mark.parametrize("device_error", [-HOUR, -1, 0, 1, 2 * HOUR])
def test_observe_server_time_learns_the_offset_to_the_server(device_error: int) -> None:
    """A device whose clock is off stamps at the server's time after one push answer."""
    server_time = T0
    wall = FakeWall(server_time + device_error - 100)  # raw device clock when the push leaves
    clock = Clock("d-1", now_ms=wall)
    server_hlc = HLC(server_time, 4, "srv")  # stamped halfway through the 200 ms round trip
    _round_trip(clock, wall, server_hlc, rtt=200)

    assert clock.offset_ms == -device_error
    assert clock.physical_ms() == server_time + 100
    assert clock.last > server_hlc
    wall.ms += 60_000  # a minute later
    stamp = clock.send()
    assert stamp > server_hlc
    assert stamp.wall >= server_time + 100 + 60_000
    if device_error <= 0:
        assert stamp.wall == server_time + 100 + 60_000


def test_observe_server_time_replaces_the_offset_rather_than_accumulating_it() -> None:
    wall = FakeWall(T0 - HOUR)  # device an hour behind
    clock = Clock("d-1", now_ms=wall)
    for i in range(3):
        server_hlc = HLC(T0 + i * 1000 + 50, 0, "srv")
        _round_trip(clock, wall, server_hlc, rtt=100)
        assert clock.offset_ms == HOUR
        wall.ms += 1000 - 100
