// `streamflex transcode --input FILE.flv --output-dir DIR [--re]`: the transcoder run on a file,
// for benchmarks and checks. Every rung is written as DIR/<rung>.mp4 (fragmented MP4, the frames'
// own timestamps); prints one JSON line: media seconds, wall seconds, CPU seconds, peak RSS, frames
// and bytes per rung. Without --re the file is read as fast as the transcoder takes it (its
// queue blocks the reader, nothing is dropped); with --re frames are fed at their timestamps, as a
// live publisher sends them, and the live rules (lag, drops) apply.
#pragma once

#include <string>

#include "app_config.h"

namespace sf::app {

int run_transcode_file(const AppConfig& cfg, const std::string& input, const std::string& output_dir, bool realtime);

}  // namespace sf::app
