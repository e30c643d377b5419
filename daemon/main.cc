// dcagent entry point: parse the command line, load and validate the whole config,
// then run the agent in the foreground (logging to stderr / the journal).
#include <cstdio>
#include <cstring>
#include <string>

#include "common/log.h"
#include "daemon/agent.h"
#include "daemon/config/config.h"

namespace {

void usage(FILE* out) {
  fprintf(out,
          "usage: dcagent [--config FILE] [--socket PATH]\n"
          "       dcagent --check-config FILE\n"
          "Runs the dc cache agent in the foreground. Without --config it runs the\n"
          "embedded default: a memory cache of min(1GiB, RAM/4), socket /run/dc/agent.sock,\n"
          "dataset 'datasets' at /srv/datasets.\n");
}

dc::LogLevel level_of(const std::string& s) {
  if (s == "error") return dc::LogLevel::kError;
  if (s == "warn") return dc::LogLevel::kWarn;
  if (s == "debug") return dc::LogLevel::kDebug;
  return dc::LogLevel::kInfo;
}

}  // namespace

int main(int argc, char** argv) {
  std::string config_path, socket_override;
  bool check_only = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&](const char* opt) -> std::string {
      if (i + 1 >= argc) {
        fprintf(stderr, "dcagent: %s needs a value\n", opt);
        exit(2);
      }
      return argv[++i];
    };
    if (a == "--config") config_path = value("--config");
    else if (a == "--check-config") {
      config_path = value("--check-config");
      check_only = true;
    } else if (a == "--socket") socket_override = value("--socket");
    else if (a == "-h" || a == "--help") {
      usage(stdout);
      return 0;
    } else {
      fprintf(stderr, "dcagent: unknown argument '%s'\n", a.c_str());
      usage(stderr);
      return 2;
    }
  }
  dc::Config config = dc::default_config();
  if (!config_path.empty()) {
    auto loaded = dc::load_config_file(config_path);
    if (!loaded) {
      fprintf(stderr, "dcagent: %s\n", loaded.error().message.c_str());
      return 1;
    }
    config = std::move(*loaded);
  }
  if (!socket_override.empty()) config.socket = socket_override;
  if (check_only) {
    printf("%s\nconfig OK\n", dc::describe_config(config).c_str());
    return 0;
  }
  dc::set_log_level(level_of(config.log_level));
  DC_LOG_INFO("%s", dc::describe_config(config).c_str());
  dc::Agent agent(std::move(config));
  if (auto s = agent.start(); !s) {
    DC_LOG_ERROR("cannot start: %s", s.error().message.c_str());
    return 1;
  }
  return agent.run();
}
