#include "demo.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <vector>

#include "sf/core/log.h"

namespace sf::app {

DemoPublisher::DemoPublisher(std::string ffmpeg, std::string rtmp_url)
    : ffmpeg_(std::move(ffmpeg)), url_(std::move(rtmp_url)), thread_([this] { run(); }) {}

DemoPublisher::~DemoPublisher() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
    if (pid_ > 0) ::kill(pid_, SIGTERM);
  }
  cv_.notify_all();
  thread_.join();
}

void DemoPublisher::run() {
  const std::string clock =
      "drawtext=fontfile=/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf:fontsize=48:fontcolor=white:"
      "box=1:boxcolor=black@0.7:x=20:y=20:text='%{localtime\\:%H\\\\\\:%M\\\\\\:%S} %{pts\\:hms}'";
  std::vector<std::string> args{ffmpeg_,
                                "-hide_banner",
                                "-loglevel",
                                "error",
                                "-nostdin",
                                "-re",
                                "-f",
                                "lavfi",
                                "-i",
                                "testsrc2=size=1280x720:rate=30",
                                "-f",
                                "lavfi",
                                "-i",
                                "sine=frequency=1000:sample_rate=48000",
                                "-vf",
                                clock,
                                "-c:v",
                                "libx264",
                                "-preset",
                                "veryfast",
                                "-tune",
                                "zerolatency",
                                "-g",
                                "30",
                                "-keyint_min",
                                "30",
                                "-sc_threshold",
                                "0",
                                "-pix_fmt",
                                "yuv420p",
                                "-b:v",
                                "2500k",
                                "-c:a",
                                "aac",
                                "-b:a",
                                "128k",
                                "-ar",
                                "48000",
                                "-ac",
                                "2",
                                "-f",
                                "flv",
                                url_};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  for (;;) {
    int pid = -1;
    {
      std::lock_guard lock(mu_);
      if (stopping_) return;
      // fork + close_range + exec rather than posix_spawn: the child must not inherit the
      // server's sockets (accepted connections are not close-on-exec).
      pid = ::fork();
      if (pid == 0) {
        ::close_range(3, ~0U, 0);
        ::execvp(argv[0], argv.data());
        ::_exit(127);
      }
      if (pid < 0) {
        log::warn("demo", "cannot start the demo publisher", {{"program", ffmpeg_}});
        return;
      }
      pid_ = pid;
    }
    log::info("demo", "demo publisher started", {{"pid", pid}});
    int status = 0;
    ::waitpid(pid, &status, 0);
    std::unique_lock lock(mu_);
    pid_ = -1;
    if (stopping_) return;
    log::warn("demo", "demo publisher exited; restarting in 2 s", {{"status", status}});
    cv_.wait_for(lock, std::chrono::seconds(2), [this] { return stopping_; });
  }
}

}  // namespace sf::app
