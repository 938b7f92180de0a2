// The edge's access log: one JSON object per served request, appended to a file by a writer thread.
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <ctime>
#include <mutex>
#include <string>
#include <thread>

#include <fmt/format.h>

#include "sf/core/log.h"
#include "sf/edge/edge.h"

namespace sf::edge {

namespace {

constexpr std::size_t kFlushAt = 64 * 1024;                   // lines waiting before the writer is woken
constexpr std::size_t kMaxPending = 8 * 1024 * 1024;          // past this, lines are dropped (and counted)
constexpr auto kFlushEvery = std::chrono::milliseconds(250);  // the longest a line waits

// A JSON string body: quotes, backslashes and every byte outside printable ASCII escaped, so a
// hostile request target can neither break a line nor make it invalid JSON.
void append_json_string(std::string& out, std::string_view s) {
  out += '"';
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20 || c >= 0x7f) {
      fmt::format_to(std::back_inserter(out), "\\u{:04x}", c);
    } else {
      out += static_cast<char>(c);
    }
  }
  out += '"';
}

void append_time(std::string& out, std::chrono::system_clock::time_point t) {
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
  std::time_t secs = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  ::gmtime_r(&secs, &tm);
  fmt::format_to(std::back_inserter(out), "\"{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z\"", tm.tm_year + 1900,
                 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ms % 1000);
}

class FileAccessLog final : public AccessLog {
 public:
  FileAccessLog(int fd, bool owned, std::string name, Metrics& metrics)
      : fd_(fd), owned_(owned), name_(std::move(name)) {
    auto& family = prometheus::BuildCounter()
                       .Name("streamflex_edge_access_log_lines_total")
                       .Help("Access log lines, by result (written, or dropped: the writer fell behind or failed)")
                       .Register(metrics.registry());
    written_ = &family.Add({{"result", "written"}});
    dropped_ = &family.Add({{"result", "dropped"}});
    writer_ = std::thread([this] { run(); });
  }

  ~FileAccessLog() override {
    {
      std::lock_guard lock(mu_);
      stopping_ = true;
    }
    wake_.notify_one();
    writer_.join();  // writes what is left
    if (owned_) ::close(fd_);
  }

  void on_access(const AccessEvent& e) override {
    thread_local std::string line;  // formatted without the lock, with no allocation per request
    line.clear();
    line += "{\"time\":";
    append_time(line, std::chrono::system_clock::now());
    line += ",\"remote\":";
    append_json_string(line, e.remote);
    line += ",\"stream\":";
    append_json_string(line, e.stream);
    line += ",\"rendition\":";
    append_json_string(line, e.rendition);
    line += ",\"object\":";
    append_json_string(line, e.object);
    fmt::format_to(std::back_inserter(line), ",\"status\":{},\"bytes\":{},\"ttfb_ms\":{:.3f},\"cache\":", e.status,
                   e.bytes, e.ttfb_ms);
    append_json_string(line, e.cache);
    line += "}\n";
    bool wake = false;
    {
      std::lock_guard lock(mu_);
      if (pending_.size() + line.size() > kMaxPending) {
        dropped_->Increment();
        return;
      }
      pending_ += line;
      ++pending_lines_;
      wake = pending_.size() >= kFlushAt;
    }
    if (wake) wake_.notify_one();
  }

 private:
  void run() {
    std::string batch;
    std::unique_lock lock(mu_);
    for (;;) {
      wake_.wait_for(lock, kFlushEvery, [this] { return stopping_ || pending_.size() >= kFlushAt; });
      bool last = stopping_;
      batch.clear();
      batch.swap(pending_);
      std::size_t lines = pending_lines_;
      pending_lines_ = 0;
      lock.unlock();
      if (!batch.empty()) {
        if (write_all(batch))
          written_->Increment(static_cast<double>(lines));
        else
          dropped_->Increment(static_cast<double>(lines));
      }
      lock.lock();
      if (last) return;
    }
  }

  bool write_all(std::string_view data) {
    while (!data.empty()) {
      ssize_t n = ::write(fd_, data.data(), data.size());
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        if (!failed_)
          log::error("edge", "cannot write the access log", {{"path", name_}, {"error", std::strerror(errno)}});
        failed_ = true;
        return false;
      }
      data.remove_prefix(static_cast<std::size_t>(n));
    }
    failed_ = false;
    return true;
  }

  int fd_;
  bool owned_;
  std::string name_;
  prometheus::Counter* written_ = nullptr;
  prometheus::Counter* dropped_ = nullptr;
  std::mutex mu_;
  std::condition_variable wake_;
  std::string pending_;
  std::size_t pending_lines_ = 0;
  bool stopping_ = false;
  bool failed_ = false;  // writer thread only
  std::thread writer_;
};

}  // namespace

Result<std::shared_ptr<AccessLog>> open_access_log(const std::string& path, Metrics& metrics) {
  if (path == "-") return std::make_shared<FileAccessLog>(STDOUT_FILENO, false, "stdout", metrics);
  // O_APPEND: lines from a restarted process follow the old ones, and a log rotated by truncation
  // (logrotate's copytruncate) goes on at the new end.
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
  if (fd < 0) return std::unexpected(std::error_code(errno, std::generic_category()));
  return std::make_shared<FileAccessLog>(fd, true, path, metrics);
}

}  // namespace sf::edge
