// `streamflex loadgen`: the viewer load generator's command line (sf/loadgen/loadgen.h does the work).
#pragma once

#include <CLI/CLI.hpp>
#include <string>

#include "sf/loadgen/loadgen.h"

namespace sf::app {

struct LoadgenCommand {
  CLI::App* sub = nullptr;
  loadgen::Options options;
  std::string duration = "30s";
  std::string ramp = "0s";
  std::string timeout = "10s";
  std::string mode = "ll";
  std::string json_path;
};

// Adds the subcommand and its flags to `app`; `cmd` receives the values.
void add_loadgen_command(CLI::App& app, LoadgenCommand& cmd);
// Runs the load and prints the summary (stdout; --json too). Exit code: 0 done, 2 bad flags, 1 failure.
int run_loadgen_command(LoadgenCommand& cmd);

}  // namespace sf::app
