// The demo publisher of `streamflex all`: an ffmpeg child process that publishes a test pattern
// with a burnt-in clock over RTMP, restarted if it exits. Main thread only.
#pragma once

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>

namespace sf::app {

class DemoPublisher {
 public:
  DemoPublisher(std::string ffmpeg, std::string rtmp_url);
  ~DemoPublisher();  // stops the child

 private:
  void run();
  std::string ffmpeg_;
  std::string url_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  int pid_ = -1;
  std::thread thread_;
};

}  // namespace sf::app
