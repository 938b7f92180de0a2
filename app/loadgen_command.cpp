#include "loadgen_command.h"

#include <cstdio>
#include <fstream>

#include "sf/core/config.h"

namespace sf::app {

void add_loadgen_command(CLI::App& app, LoadgenCommand& cmd) {
  auto& o = cmd.options;
  cmd.sub = app.add_subcommand("loadgen", "Viewer load generator: simulated HLS / LL-HLS players against a URL");
  cmd.sub->add_option("--url", o.url, "Multivariant (or media) playlist, http://host:port/live/<stream>/master.m3u8")
      ->required();
  cmd.sub->add_option("--viewers", o.viewers, "Simulated viewers")->capture_default_str();
  cmd.sub->add_option("--duration", cmd.duration, "How long the run lasts (30s, 2m, 1500ms)")->capture_default_str();
  cmd.sub->add_option("--ramp", cmd.ramp, "Viewers start evenly spread over this")->capture_default_str();
  cmd.sub->add_option("--mode", cmd.mode, "ll: blocking reloads and parts; poll: reload every TD/2, segments")
      ->check(CLI::IsMember({"ll", "poll"}))
      ->capture_default_str();
  cmd.sub->add_option("--threads", o.threads, "Event loops (one thread each)")->capture_default_str();
  cmd.sub->add_option("--timeout", cmd.timeout, "Per request")->capture_default_str();
  cmd.sub->add_option("--json", cmd.json_path, "Also write the summary as JSON to this file");
  cmd.sub->add_flag("--audio", o.audio, "Also follow the audio rendition");
  cmd.sub->add_flag("--abr", o.abr,
                    "Start on the lowest variant and switch by the measured download rate (with hysteresis)");
  cmd.sub->add_option("--bandwidth", o.bandwidth,
                      "With --abr: each viewer's simulated link, 3M, 1M-8M (spread over viewers) or 500k,2M,6M "
                      "(round robin); default: the real network");
  cmd.sub->add_option("--reference", o.reference,
                      "ll mode: the same stream at its origin; measures each part from its listing there to the "
                      "viewer (part delivery since origin)");
  cmd.sub->add_flag("--skip", o.skip, "ll mode: ask blocking reloads for delta updates (_HLS_skip=YES) when offered");
}

int run_loadgen_command(LoadgenCommand& cmd) {
  auto& o = cmd.options;
  for (auto [text, out, name] :
       {std::tuple{&cmd.duration, &o.duration, "--duration"}, std::tuple{&cmd.ramp, &o.ramp, "--ramp"},
        std::tuple{&cmd.timeout, &o.timeout, "--timeout"}}) {
    if (!parse_duration(*text, *out)) {
      std::fprintf(stderr, "streamflex loadgen: %s %s: expected a duration like 30s, 2m or 1500ms\n", name,
                   text->c_str());
      return 2;
    }
  }
  o.mode = cmd.mode == "poll" ? loadgen::Mode::poll : loadgen::Mode::ll;
  if (o.viewers == 0 || o.threads == 0 || o.duration.count() == 0) {
    std::fprintf(stderr, "streamflex loadgen: --viewers, --threads and --duration must be above zero\n");
    return 2;
  }
  auto summary = loadgen::run(o, stderr);
  if (!summary) {
    std::fprintf(stderr, "streamflex loadgen: %s\n", summary.error().message().c_str());
    return summary.error() == errc::limit_exceeded ? 1 : 2;
  }
  std::fputs(loadgen::format_summary(*summary).c_str(), stdout);
  std::fflush(stdout);
  if (!cmd.json_path.empty()) {
    std::ofstream out(cmd.json_path);
    out << loadgen::to_json(*summary).dump(2) << "\n";
    if (!out) {
      std::fprintf(stderr, "streamflex loadgen: cannot write %s\n", cmd.json_path.c_str());
      return 1;
    }
  }
  return 0;
}

}  // namespace sf::app
