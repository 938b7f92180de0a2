"""Every version of the LL-HLS media playlists, checked by an independent parser.

ffmpeg publishes a 30 s clip in real time; the test reloads the video and audio playlists every
250 ms for 20 s and streams each new version to tests/browser/check_playlists.mjs, which parses it
with npm hls-parser (strict mode) and checks SPECS.md §1 rules within and across versions. Every
video part listed is fetched as soon as it is seen; ffprobe decodes init + part to see whether the
part really starts with a keyframe, and that is compared with its INDEPENDENT attribute.
"""
import json
import subprocess
import time
import types

import pytest

import sfharness as h

POLL_SECONDS = 20
POLL_INTERVAL = 0.25
RENDITIONS = ("video", "audio")


@pytest.fixture(scope="module")
def observed(module_servers, module_procs, clip30, browser_deps, tmp_path_factory):
    srv = h.start_origin(module_servers)
    key = srv.create_key("pl")
    work = tmp_path_factory.mktemp("playlists")
    module_procs.add(h.ffmpeg_publish(clip30, srv.url(key), work / "ffmpeg.log"))
    base = f"{srv.origin}/live/pl"
    h.wait_until(lambda: h.http_get(f"{base}/video/index.m3u8")[0] == 200, 15, "video playlist served")

    checker = subprocess.Popen(["node", str(h.BROWSER_DIR / "check_playlists.mjs")], cwd=h.BROWSER_DIR,
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    r = types.SimpleNamespace(srv=srv, polls=0, errors=[], parts={}, inits={}, report=None)
    last = {}
    try:
        end = time.monotonic() + POLL_SECONDS
        for _ in range(int(POLL_SECONDS / POLL_INTERVAL) + 10):
            tick = time.monotonic()
            if tick >= end:
                break
            r.polls += 1
            for rendition in RENDITIONS:
                t = time.time() * 1000
                status, body, _ = h.http_get(f"{base}/{rendition}/index.m3u8")
                if status != 200:
                    r.errors.append(f"{rendition} playlist answered {status}")
                    continue
                if body == last.get(rendition):
                    continue
                last[rendition] = body
                checker.stdin.write(json.dumps({"rendition": rendition, "t": t, "text": body}) + "\n")
                checker.stdin.flush()
                if rendition == "video":
                    fetch_new_parts(base, h.MediaPlaylist(body), r)
            time.sleep(max(0.0, POLL_INTERVAL - (time.monotonic() - tick)))
        out, err = checker.communicate(timeout=60)
        lines = [l for l in out.splitlines() if l.strip()]
        r.report = json.loads(lines[-1]) if lines else None
        if r.report is None:
            r.errors.append(f"checker printed nothing; stderr:\n{err[-3000:]}")
    finally:
        if checker.poll() is None:
            checker.kill()
            checker.wait(5)
    r.keyframes = probe_part_starts(r, work)
    if r.report:
        print(f"\nversions checked: {r.report['versions']}; video parts fetched: {len(r.parts)}")
        for rule, msgs in sorted(r.report["violations"].items()):
            print(f"  {rule}: {len(msgs)} e.g. {msgs[0]}")
    return r


def fetch_new_parts(base, pl, r):
    """Downloads every video part (and its init) the first time it is listed."""
    for s in pl.segments + [{"parts": pl.open_parts, "map": pl.segments[-1]["map"] if pl.segments else None}]:
        for p in s["parts"]:
            if p["uri"] in r.parts:
                continue
            init = s["map"] or "init1.mp4"
            if init not in r.inits:
                status, _, body = h.http_request(f"{base}/video/{init}")
                if status == 200:
                    r.inits[init] = body
            status, _, body = h.http_request(f"{base}/video/{p['uri']}")
            if status == 200:
                r.parts[p["uri"]] = {"init": init, "body": body, "independent": p["independent"]}


def probe_part_starts(r, work):
    """{part URI: (first decoded frame is a keyframe and every packet decoded, packets, frames)}.

    ffmpeg's H.264 decoder drops frames whose references are missing, so a part that does not
    start with an IDR decodes fewer frames than it has packets (often none).
    """
    out = {}
    for uri, p in r.parts.items():
        path = work / f"probe-{uri}.mp4"
        path.write_bytes(r.inits.get(p["init"], b"") + p["body"])
        packets = h.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries", "packet=flags",
                         "-of", "csv=p=0", str(path)], timeout=30).stdout.split()
        frames = h.ffprobe(path, "-select_streams", "v:0", "-show_entries", "frame=key_frame,pict_type",
                           timeout=30).get("frames", [])
        starts_with_key = (bool(frames) and frames[0].get("key_frame") == 1 and frames[0].get("pict_type") == "I"
                           and len(frames) == len(packets))
        out[uri] = (starts_with_key, len(packets), len(frames))
    return out


def violations(r, *rules):
    assert r.report, r.errors
    v = r.report["violations"]
    return {rule: v[rule] for rule in rules if v.get(rule)}


def test_polling_saw_enough_versions(observed):
    assert not observed.errors, observed.errors
    # Parts every 0.5 s over 20 s: about 40 versions per rendition; polling every 250 ms sees most.
    assert all(observed.report["versions"].get(r, 0) >= 25 for r in RENDITIONS), observed.report["versions"]
    assert len(observed.parts) >= 25, len(observed.parts)


def test_hls_parser_strict_mode_accepts_every_version(observed):
    # The part-age rule is checked precisely by test_part_tags_removed_3_td_from_the_end;
    # hls-parser approximates it by counting segments.
    errors = [m for m in violations(observed, "strict", "not_media", "checker_error").get("strict", [])
              if "Remove EXT-X-PART tags" not in m]
    other = violations(observed, "not_media", "checker_error")
    assert not errors and not other, (errors[:5], other)


def test_part_durations_within_part_target(observed):
    # DURATION ≤ PART-TARGET; ≥ 0.85·PART-TARGET unless INDEPENDENT or last of its segment.
    assert not violations(observed, "part_max", "part_min", "part_changed")


def test_segment_durations_within_target_duration(observed):
    assert not violations(observed, "segment_duration", "segment_parts_sum", "td_changed")


def test_media_sequence_continuous_between_versions(observed):
    assert not violations(observed, "msn_decreased", "msn_gap", "segment_changed", "segment_vanished")


def test_program_date_time_on_every_segment_and_monotonic(observed):
    assert not violations(observed, "pdt_missing", "pdt_order", "pdt_step")


def test_preload_hint_names_next_part_and_comes_true(observed):
    assert not violations(observed, "hint", "hint_not_next", "hint_unfulfilled")


def test_server_control_rendition_reports_and_window(observed):
    assert not violations(observed, "part_inf", "server_control", "rendition_report", "window_short")


def test_part_tags_removed_3_td_from_the_end(observed):
    # SPECS §1.3 / rfc8216bis 6.2.2: EXT-X-PART tags go once they are more than 3·TD from the end.
    v = violations(observed, "part_age")
    assert not v, (f"parts listed up to {observed.report['maxPartAge']} s before the end; "
                   f"{len(v['part_age'])}+ cases, e.g. {v['part_age'][:3]}")


def test_independent_parts_start_with_a_keyframe(observed):
    marked = {u: k for u, k in observed.keyframes.items() if observed.parts[u]["independent"]}
    assert len(marked) >= 5, "too few INDEPENDENT parts fetched to judge"
    bad = {u: k for u, k in marked.items() if not k[0]}
    assert not bad, f"INDEPENDENT=YES but not decodable from a keyframe (ok, packets, frames): {bad}"


def test_parts_starting_with_a_keyframe_are_marked_independent(observed):
    unmarked = {u: k for u, k in observed.keyframes.items() if not observed.parts[u]["independent"]}
    assert len(unmarked) >= 5, "too few non-INDEPENDENT parts fetched to judge"
    bad = [u for u, k in unmarked.items() if k[0]]
    assert not bad, f"parts that start with a keyframe lack INDEPENDENT=YES: {bad}"
