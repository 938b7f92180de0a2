// The viewer load generator (`streamflex loadgen`): simulates many HLS / LL-HLS players from one
// process and reports what they experienced.
// Each viewer is one coroutine (two with audio) and one keep-alive connection per followed
// rendition, on one of `threads` io_contexts (one thread each). A viewer fetches the multivariant
// playlist, takes the first video variant and its media playlist, then
// - ll mode: starts PART-HOLD-BACK behind the live edge at an INDEPENDENT part, and follows
//   blocking reloads (_HLS_msn/_HLS_part for the part after the last listed one, SPECS §1.2),
//   downloading each new part as it is listed;
// - poll mode: starts three segments from the end, reloads every target duration / 2 and
//   downloads each new complete segment.
// With `abr` a viewer starts on the lowest variant and switches by its measured download rate
// over a simulated link of its own (abr.h), moving to the new variant's playlist at the next part
// or segment.
// A simulated playback buffer (playback.h) gives startup time, stalls and latency behind live.
// run() blocks the calling thread for about `duration` and returns the summary. Everything is
// bounded by the duration: at the deadline requests are cut and every coroutine ends.
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <map>
#include <string>

#include <nlohmann/json.hpp>

#include "sf/core/result.h"

namespace sf::loadgen {

enum class Mode { ll, poll };

struct Options {
  std::string url;  // http://host:port/live/<stream>/master.m3u8
  std::size_t viewers = 100;
  std::chrono::milliseconds duration{30000};
  std::chrono::milliseconds ramp{0};  // viewers start evenly spread over this
  Mode mode = Mode::ll;
  std::size_t threads = 1;
  bool audio = false;  // also follow the audio rendition
  bool skip = false;   // ll mode: ask blocking reloads for delta updates (_HLS_skip=YES) when offered
  std::chrono::milliseconds timeout{10000};        // per request (blocking reloads hold up to 3 target durations)
  std::chrono::milliseconds progress_every{5000};  // progress lines on `progress`; 0: none
  // Adaptive bitrate: start on the lowest variant and switch by the measured download rate (abr.h).
  bool abr = false;
  // Simulated per-viewer link for `abr`: "3M", "1M-8M" (spread over the viewers), "500k,2M,6M"
  // (round robin); empty: the real network's rate only.
  std::string bandwidth;
  // ll mode: the same stream at its origin (http://host:port/live/<stream>/master.m3u8). A
  // reference player there notes when each part is first listed, and part_since_origin measures
  // every viewer's part from that moment (what the proxy between adds, reload and download).
  std::string reference;
};

// Latency percentiles in milliseconds.
struct Percentiles {
  std::uint64_t count = 0;
  double p50 = 0, p95 = 0, p99 = 0, max = 0;
};

struct Summary {
  Options options;
  double seconds = 0;  // from the first viewer's start to the end
  std::size_t viewers = 0;
  std::size_t started = 0;  // reached playback
  std::size_t ok = 0;       // started and never gave up
  std::size_t failed = 0;   // gave up after repeated errors, or never started
  std::uint64_t requests = 0;
  std::uint64_t bytes = 0;                                          // response bodies
  std::uint64_t playlists = 0, parts = 0, segments = 0, inits = 0;  // successful downloads
  std::uint64_t delta_playlists = 0;                                // of `playlists`: delta updates (EXT-X-SKIP)
  Percentiles startup;                                              // viewer start -> playback start
  Percentiles live_edge;      // wall clock - PDT of the playback position, sampled per download
  Percentiles part_delivery;  // blocking reload answered -> new part's last byte (ll mode)
  Percentiles part_age;       // part's last byte - PDT of its start (how live the part is on arrival)
  // --reference: part listed at the origin -> its last byte at the viewer (parts listed there before
  // the viewer began are left out: a joining viewer catches up on those)
  Percentiles part_since_origin;
  std::uint64_t parts_unreferenced = 0;  // --reference: parts downloaded that the reference never saw listed
  std::uint64_t reference_errors = 0;
  std::uint64_t stalls = 0;
  std::size_t stalled_viewers = 0;
  double stall_seconds = 0;
  std::map<std::string, std::uint64_t> errors;                // by kind: timeout, closed, io_error, http_404, gap, ...
  double cpu_seconds = 0;                                     // user + system CPU of this process during the run
  std::uint64_t abr_up = 0, abr_down = 0;                     // rendition switches (abr)
  std::map<std::uint64_t, std::uint64_t> media_by_bandwidth;  // abr: media downloads per variant BANDWIDTH
  std::uint64_t error_count() const;
};

// Raises the soft RLIMIT_NOFILE to the hard limit; returns the soft limit now in force.
std::uint64_t raise_open_file_limit();

// Runs the load; progress lines go to `progress` (may be null). Errors only for bad options
// (errc::invalid_argument, errc::unsupported URL) or too few file descriptors (errc::limit_exceeded).
Result<Summary> run(const Options& options, std::FILE* progress = stderr);

std::string format_summary(const Summary& s);
nlohmann::json to_json(const Summary& s);

}  // namespace sf::loadgen
