#include "sf/http/server.h"

#include <gtest/gtest.h>

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>

#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace sf::http {
namespace {

namespace asio = boost::asio;
using asio::ip::tcp;
using namespace std::chrono_literals;

struct Fixture {
  explicit Fixture(ServerLimits limits = {}) : pool(1), server(pool, net::Endpoint{"127.0.0.1", 0}, limits) {
    server.route("GET", "/a", [](Request&) { return Response::text(200, "A"); });
    server.route("GET", "/b", [](Request&) { return Response::text(200, "BB"); });
    server.route("GET", "/echo",
                 [](Request& r) { return Response::text(200, r.path + "?" + r.query + "|" + r.header("x-k")); });
    // Held: the first request is never answered in time; later ones are answered from another thread.
    server.route_held("GET", "/held", 200ms, Response::text(503, "late\n"), [this](const Request& req, Responder res) {
      std::lock_guard lock(mu);
      if (req.query == "keep") {
        kept = res;  // answered (too late) by the test
        return;
      }
      std::thread([res, q = req.query] {
        std::this_thread::sleep_for(20ms);
        res(Response::text(200, "answer " + q));
      }).detach();
    });
    server.on_refused([this](int status, const std::string& remote) {
      std::lock_guard lock(mu);
      refused.emplace_back(status, remote);
    });
    pool.start();
    server.start();
  }
  std::vector<std::pair<int, std::string>> refusals() {
    std::lock_guard lock(mu);
    return refused;
  }
  ~Fixture() {
    server.stop();
    pool.stop();
    pool.join();
  }

  net::IoPool pool;
  Server server;
  std::vector<std::pair<int, std::string>> refused;  // on_refused, under mu
  std::mutex mu;
  std::optional<Responder> kept;
};

struct Client {
  explicit Client(std::uint16_t port) : sock(ctx) { sock.connect({asio::ip::make_address("127.0.0.1"), port}); }
  void send(std::string_view s) { asio::write(sock, asio::buffer(s)); }
  // Reads one response with a Content-Length body; "" if the connection closed first.
  std::string response() {
    for (;;) {
      auto end = buf.find("\r\n\r\n");
      if (end != std::string::npos) {
        auto cl = buf.find("Content-Length: ");
        std::size_t len = cl < end ? std::stoul(buf.substr(cl + 16)) : 0;
        if (buf.size() >= end + 4 + len) {
          auto out = buf.substr(0, end + 4 + len);
          buf.erase(0, end + 4 + len);
          return out;
        }
      }
      char tmp[4096];
      boost::system::error_code ec;
      auto n = sock.read_some(asio::buffer(tmp), ec);
      if (ec) return "";
      buf.append(tmp, n);
    }
  }
  static std::string body(const std::string& r) { return r.substr(r.find("\r\n\r\n") + 4); }
  // Whether the server closed the connection within `d`.
  bool closed_within(std::chrono::milliseconds d) {
    sock.non_blocking(true);
    auto until = std::chrono::steady_clock::now() + d;
    while (std::chrono::steady_clock::now() < until) {
      char tmp[64];
      boost::system::error_code ec;
      sock.read_some(asio::buffer(tmp), ec);
      if (ec && ec != asio::error::would_block) return true;
      std::this_thread::sleep_for(10ms);
    }
    return false;
  }
  asio::io_context ctx;
  tcp::socket sock;
  std::string buf;
};

TEST(Server, PipelinedRequestsAreAnsweredInOrder) {
  Fixture f;
  Client c(f.server.port());
  c.send(
      "GET /b HTTP/1.1\r\nHost: x\r\n\r\nGET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /echo?q=1 HTTP/1.1\r\nX-K: v\r\n\r\n");
  EXPECT_EQ(Client::body(c.response()), "BB");
  EXPECT_EQ(Client::body(c.response()), "A");
  EXPECT_EQ(Client::body(c.response()), "/echo?q=1|v");
}

// A file body (sendfile) of 3 MB, more than a socket takes at once: whole, then one range, then
// the connection still serves the next request.
TEST(Server, FileBodyIsSentWholeAndByRangeOnAKeptAliveConnection) {
  std::string bytes(3 * 1024 * 1024, '\0');
  for (std::size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<char>(i * 7 + i / 4096);
  int fd = ::memfd_create("server-test", MFD_CLOEXEC);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::write(fd, bytes.data(), bytes.size()), static_cast<ssize_t>(bytes.size()));
  auto file = std::make_shared<const FileBody>(fd, bytes.size());
  Fixture f;
  f.server.route("GET", "/file", [file](Request&) {
    Response r;
    r.content_type = "video/iso.segment";
    r.file = file;
    return r;
  });
  Client c(f.server.port());
  c.send("GET /file HTTP/1.1\r\nHost: x\r\n\r\n");
  auto whole = c.response();
  EXPECT_NE(whole.find("Content-Length: 3145728\r\n"), std::string::npos);
  EXPECT_TRUE(Client::body(whole) == bytes);
  c.send("GET /file HTTP/1.1\r\nHost: x\r\nRange: bytes=1000000-1000099\r\n\r\n");
  auto part = c.response();
  EXPECT_NE(part.find("206"), std::string::npos);
  EXPECT_EQ(Client::body(part), bytes.substr(1000000, 100));
  c.send("GET /a HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(Client::body(c.response()), "A");
}

// A gather body of many pieces (more than one sendmsg takes, none aligned to the write slice) goes
// out slice by slice with a turn of the event loop between slices: every byte in order, whole and
// by range, while a second connection on the same thread is answered.
TEST(Server, LargeGatherBodyIsWrittenSliceBySliceWholeAndByRange) {
  std::vector<Bytes> pieces;
  std::string bytes;
  for (int i = 0; i < 300; ++i) {
    std::string piece(13001, '\0');
    for (std::size_t j = 0; j < piece.size(); ++j) piece[j] = static_cast<char>(i * 31 + j * 7);
    bytes += piece;
    pieces.push_back(Bytes::copy_of(as_bytes(piece)));
  }
  Fixture f;
  f.server.route("GET", "/big", [&pieces](Request&) {
    Response r;
    r.body = "head-of-body";
    r.pieces = pieces;
    return r;
  });
  bytes = "head-of-body" + bytes;
  Client c(f.server.port());
  Client other(f.server.port());
  c.send("GET /big HTTP/1.1\r\nHost: x\r\n\r\n");
  other.send("GET /a HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(Client::body(other.response()), "A");
  auto whole = c.response();
  EXPECT_NE(whole.find("Content-Length: " + std::to_string(bytes.size()) + "\r\n"), std::string::npos);
  EXPECT_TRUE(Client::body(whole) == bytes);
  c.send("GET /big HTTP/1.1\r\nHost: x\r\nRange: bytes=262000-1310999\r\n\r\n");
  auto part = c.response();
  EXPECT_NE(part.find("206"), std::string::npos);
  EXPECT_TRUE(Client::body(part) == bytes.substr(262000, 1049000));
}

// The edge's large cached objects: one sealed memfd holding the pieces in order, which nobody can
// change afterwards.
TEST(Server, SealedCopyHoldsThePiecesAndCannotBeWritten) {
  std::vector<Bytes> pieces{Bytes::copy_of(as_bytes(std::string(200000, 'a'))),
                            Bytes::copy_of(as_bytes(std::string("middle"))),
                            Bytes::copy_of(as_bytes(std::string(70000, 'z')))};
  auto file = FileBody::sealed_copy(pieces);
  ASSERT_TRUE(file);
  EXPECT_EQ(file->size, 270006u);
  std::string back(file->size, '\0');
  ASSERT_EQ(::pread(file->fd, back.data(), back.size(), 0), static_cast<ssize_t>(back.size()));
  EXPECT_TRUE(back == std::string(200000, 'a') + "middle" + std::string(70000, 'z'));
  EXPECT_LT(::pwrite(file->fd, "x", 1, 0), 0);  // F_SEAL_WRITE
  EXPECT_NE(::fcntl(file->fd, F_GET_SEALS) & F_SEAL_WRITE, 0);
}

// The origin's large parts: an unnamed file in a directory, holding the pieces in order, read-only
// for whoever holds it, leaving no name behind; served whole and by range like any file body. A
// directory that cannot take it gives no file (the caller falls back to sealed_copy).
TEST(Server, UnnamedCopyHoldsThePiecesReadOnlyAndIsServed) {
  std::string dir = ::testing::TempDir();
  std::vector<Bytes> pieces{Bytes::copy_of(as_bytes(std::string(300000, 'p'))),
                            Bytes::copy_of(as_bytes(std::string("middle"))),
                            Bytes::copy_of(as_bytes(std::string(900000, 'q')))};
  std::string bytes = std::string(300000, 'p') + "middle" + std::string(900000, 'q');
  auto file = FileBody::unnamed_copy(pieces, dir);
  ASSERT_TRUE(file);
  EXPECT_EQ(file->size, bytes.size());
  std::string back(file->size, '\0');
  ASSERT_EQ(::pread(file->fd, back.data(), back.size(), 0), static_cast<ssize_t>(back.size()));
  EXPECT_TRUE(back == bytes);
  EXPECT_LT(::pwrite(file->fd, "x", 1, 0), 0);  // read-only descriptor
  EXPECT_EQ(::fcntl(file->fd, F_GETFL) & O_ACCMODE, O_RDONLY);
  EXPECT_FALSE(FileBody::unnamed_copy(pieces, dir + "/no-such-directory"));
  // More pieces than one writev takes (IOV_MAX), empty ones among them, all in order.
  std::vector<Bytes> many;
  std::string many_bytes;
  for (int i = 0; i < 3000; ++i) {
    std::string piece(static_cast<std::size_t>(i % 7 == 0 ? 0 : 100 + i % 13), static_cast<char>('a' + i % 26));
    many_bytes += piece;
    many.push_back(Bytes::copy_of(as_bytes(piece)));
  }
  for (auto copy : {FileBody::unnamed_copy(many, dir), FileBody::sealed_copy(many)}) {
    ASSERT_TRUE(copy);
    ASSERT_EQ(copy->size, many_bytes.size());
    std::string got(copy->size, '\0');
    ASSERT_EQ(::pread(copy->fd, got.data(), got.size(), 0), static_cast<ssize_t>(got.size()));
    EXPECT_TRUE(got == many_bytes);
  }

  Fixture f;
  f.server.route("GET", "/part", [file](Request&) {
    Response r;
    r.content_type = "video/iso.segment";
    r.file = file;
    return r;
  });
  Client c(f.server.port());
  c.send("GET /part HTTP/1.1\r\nHost: x\r\n\r\n");
  auto whole = c.response();
  EXPECT_NE(whole.find("Content-Length: 1200006\r\n"), std::string::npos);
  EXPECT_TRUE(Client::body(whole) == bytes);
  c.send("GET /part HTTP/1.1\r\nHost: x\r\nRange: bytes=299998-300009\r\n\r\n");
  EXPECT_EQ(Client::body(c.response()), "ppmiddleqqqq");
}

// A viewer that leaves in the middle of a file body (sendfile has no MSG_NOSIGNAL) costs only its
// own connection: the process is not ended by SIGPIPE and others are served.
TEST(Server, ViewerLeavingMidFileBodyDisturbsNobodyElse) {
  std::string bytes(8 * 1024 * 1024, 'x');
  int fd = ::memfd_create("server-test", MFD_CLOEXEC);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::write(fd, bytes.data(), bytes.size()), static_cast<ssize_t>(bytes.size()));
  auto file = std::make_shared<const FileBody>(fd, bytes.size());
  Fixture f;
  f.server.route("GET", "/file", [file](Request&) {
    Response r;
    r.file = file;
    return r;
  });
  for (int i = 0; i < 3; ++i) {
    Client leaver(f.server.port());
    leaver.send("GET /file HTTP/1.1\r\nHost: x\r\n\r\n");
    char some[1024];
    leaver.sock.read_some(asio::buffer(some));
    // An abortive close (RST): the server's next sendfile meets EPIPE/ECONNRESET.
    leaver.sock.set_option(asio::socket_base::linger(true, 0));
    leaver.sock.close();
  }
  Client other(f.server.port());
  other.send("GET /a HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(Client::body(other.response()), "A");
}

// A body made while it is sent: pieces appended by a producer thread, waiters woken by append().
class TestSource final : public BodySource {
 public:
  void append(std::string_view s) {
    publish([&] { pieces_.push_back(Bytes::copy_of(as_bytes(s))); });
  }
  void end() {
    publish([&] { ended_ = true; });
  }
  void fail() {
    publish([&] { failed_ = true; });
  }
  Progress read(std::size_t from, std::vector<Bytes>& out) const override {
    std::lock_guard lock(mu_);
    for (std::size_t i = from; i < pieces_.size(); ++i) out.push_back(pieces_[i]);
    return {std::max(from, pieces_.size()), ended_, failed_};
  }
  void when_beyond(std::size_t from, const boost::asio::any_io_executor& ex,
                   std::function<void()> wake) const override {
    std::lock_guard lock(mu_);
    if (pieces_.size() > from || ended_ || failed_)
      asio::post(ex, std::move(wake));
    else
      waiters_.emplace_back(ex, std::move(wake));
  }

 private:
  template <typename F>
  void publish(F change) {
    std::vector<std::pair<boost::asio::any_io_executor, std::function<void()>>> woken;
    {
      std::lock_guard lock(mu_);
      change();
      woken.swap(waiters_);
    }
    for (auto& [ex, w] : woken) asio::post(ex, std::move(w));
  }
  mutable std::mutex mu_;
  std::vector<Bytes> pieces_;
  bool ended_ = false;
  bool failed_ = false;
  mutable std::vector<std::pair<boost::asio::any_io_executor, std::function<void()>>> waiters_;
};

// Reads from `c` until `want` bytes follow the head, or the connection ends; returns what came.
std::string read_until_size(Client& c, std::size_t want, std::chrono::milliseconds limit) {
  auto until = std::chrono::steady_clock::now() + limit;
  c.sock.non_blocking(true);
  while (std::chrono::steady_clock::now() < until) {
    auto end = c.buf.find("\r\n\r\n");
    if (end != std::string::npos && c.buf.size() >= end + 4 + want) break;
    char tmp[4096];
    boost::system::error_code ec;
    auto n = c.sock.read_some(asio::buffer(tmp), ec);
    if (ec == asio::error::would_block) {
      std::this_thread::sleep_for(5ms);
      continue;
    }
    if (ec) break;
    c.buf.append(tmp, n);
  }
  c.sock.non_blocking(false);
  return c.buf;
}

TEST(Server, SourceBodyIsSentChunkedAsItsPiecesAppear) {
  Fixture f;
  auto source = std::make_shared<TestSource>();
  f.server.route("GET", "/live", [source](Request&) {
    Response r;
    r.content_type = "video/iso.segment";
    r.source = source;
    return r;
  });
  source->append("first");
  Client c(f.server.port());
  c.send("GET /live HTTP/1.1\r\nHost: x\r\nRange: bytes=0-1\r\n\r\n");
  // The head and what exists go out at once; nothing waits for the end.
  auto got = read_until_size(c, 10, 2s);
  auto head = got.substr(0, got.find("\r\n\r\n") + 4);
  EXPECT_TRUE(head.starts_with("HTTP/1.1 200")) << head;  // Range ignored: the whole body
  EXPECT_NE(head.find("Transfer-Encoding: chunked\r\n"), std::string::npos) << head;
  EXPECT_EQ(head.find("Content-Length"), std::string::npos) << head;
  EXPECT_EQ(Client::body(got), "5\r\nfirst\r\n");
  source->append("second!");
  got = read_until_size(c, 10 + 12, 2s);
  EXPECT_EQ(Client::body(got), "5\r\nfirst\r\n7\r\nsecond!\r\n");
  source->end();
  got = read_until_size(c, 10 + 12 + 5, 2s);
  EXPECT_EQ(Client::body(got), "5\r\nfirst\r\n7\r\nsecond!\r\n0\r\n\r\n");
  c.buf.clear();
  c.send("GET /a HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(Client::body(c.response()), "A");
}

// Response::on_sent reports the body bytes that left, whatever the body's kind: a file whole and by
// range, nothing for HEAD, a gather body, and a chunked source without its framing.
TEST(Server, OnSentCountsTheBodyBytesWritten) {
  std::string bytes(300001, 'f');
  int fd = ::memfd_create("server-test", MFD_CLOEXEC);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::write(fd, bytes.data(), bytes.size()), static_cast<ssize_t>(bytes.size()));
  auto file = std::make_shared<const FileBody>(fd, bytes.size());
  auto source = std::make_shared<TestSource>();
  auto sent = std::make_shared<std::atomic<std::size_t>>(0);
  auto count = [sent](std::size_t n) { *sent += n; };
  Fixture f;
  f.server.route("GET", "/file", [file, count](Request&) {
    Response r;
    r.file = file;
    r.on_sent = count;
    return r;
  });
  f.server.route("GET", "/small", [count](Request&) {
    Response r = Response::text(200, "hello");
    r.on_sent = count;
    return r;
  });
  f.server.route("GET", "/live", [source, count](Request&) {
    Response r;
    r.source = source;
    r.on_sent = count;
    return r;
  });
  // Counted on the server's thread after the write: wait for it, then it must be exact.
  auto total_becomes = [&](std::size_t want) {
    auto until = std::chrono::steady_clock::now() + 2s;
    while (sent->load() < want && std::chrono::steady_clock::now() < until) std::this_thread::sleep_for(1ms);
    std::this_thread::sleep_for(20ms);
    return sent->load();
  };
  Client c(f.server.port());
  c.send("GET /file HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(Client::body(c.response()).size(), bytes.size());
  EXPECT_EQ(total_becomes(300001), 300001u);
  c.send("GET /file HTTP/1.1\r\nHost: x\r\nRange: bytes=10-109\r\n\r\n");
  EXPECT_EQ(Client::body(c.response()).size(), 100u);
  EXPECT_EQ(total_becomes(300101), 300101u);
  c.send("HEAD /file HTTP/1.1\r\nHost: x\r\n\r\n");
  auto head = read_until_size(c, 0, 2s);
  EXPECT_NE(head.find("Content-Length: 300001\r\n"), std::string::npos) << head;
  c.buf.clear();
  c.send("GET /small HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(Client::body(c.response()), "hello");
  EXPECT_EQ(total_becomes(300106), 300106u);  // HEAD added nothing
  source->append("first");
  source->append("second!");
  source->end();
  c.send("GET /live HTTP/1.1\r\nHost: x\r\n\r\n");
  auto got = read_until_size(c, 22, 2s);
  EXPECT_EQ(Client::body(got), "c\r\nfirstsecond!\r\n0\r\n\r\n");
  EXPECT_EQ(total_becomes(300118), 300118u);
}

// A file body is sent corked (full segments); the cork must come off at its end, or the body's last
// partial segment and every later small answer on the connection would wait for the kernel's
// 200 ms cork timeout. The best of three rounds (file whose length ends mid-segment, then a small
// answer) stays well under that even on a loaded machine.
TEST(Server, FileBodyLeavesNoCorkBehind) {
  std::string bytes(200001, 'c');
  int fd = ::memfd_create("server-test", MFD_CLOEXEC);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::write(fd, bytes.data(), bytes.size()), static_cast<ssize_t>(bytes.size()));
  auto file = std::make_shared<const FileBody>(fd, bytes.size());
  Fixture f;
  f.server.route("GET", "/file", [file](Request&) {
    Response r;
    r.file = file;
    return r;
  });
  Client c(f.server.port());
  auto best = std::chrono::steady_clock::duration::max();
  for (int i = 0; i < 3; ++i) {
    auto t0 = std::chrono::steady_clock::now();
    c.send("GET /file HTTP/1.1\r\nHost: x\r\n\r\n");
    ASSERT_EQ(Client::body(c.response()).size(), bytes.size());
    c.send("GET /a HTTP/1.1\r\nHost: x\r\n\r\n");
    ASSERT_EQ(Client::body(c.response()), "A");
    best = std::min(best, std::chrono::steady_clock::now() - t0);
  }
  EXPECT_LT(best, 120ms);
}

TEST(Server, SourceBodyToHttp10IsDelimitedByTheConnectionEnd) {
  Fixture f;
  auto source = std::make_shared<TestSource>();
  f.server.route("GET", "/live", [source](Request&) {
    Response r;
    r.source = source;
    return r;
  });
  source->append("abc");
  Client c(f.server.port());
  c.send("GET /live HTTP/1.0\r\n\r\n");
  read_until_size(c, 3, 2s);
  source->append("def");
  source->end();
  auto got = read_until_size(c, 1000, 2s);  // until closed
  EXPECT_TRUE(got.starts_with("HTTP/1.0 200")) << got;
  EXPECT_NE(got.find("Connection: close\r\n"), std::string::npos) << got;
  EXPECT_EQ(got.find("Transfer-Encoding"), std::string::npos) << got;
  EXPECT_EQ(Client::body(got), "abcdef");
}

TEST(Server, FailedSourceBodyClosesTheConnectionWithoutTheLastChunk) {
  Fixture f;
  auto source = std::make_shared<TestSource>();
  f.server.route("GET", "/live", [source](Request&) {
    Response r;
    r.source = source;
    return r;
  });
  source->append("abc");
  Client c(f.server.port());
  c.send("GET /live HTTP/1.1\r\n\r\n");
  read_until_size(c, 8, 2s);
  source->fail();
  auto got = read_until_size(c, 1000, 2s);  // until closed
  EXPECT_EQ(Client::body(got), "3\r\nabc\r\n");
  EXPECT_TRUE(c.closed_within(1s));
}

TEST(Server, HeadSplitOverSeveralWritesIsServed) {
  Fixture f;
  Client c(f.server.port());
  c.send("GET /echo?z HT");
  std::this_thread::sleep_for(50ms);
  c.send("TP/1.1\r\nX-K: ");
  std::this_thread::sleep_for(50ms);
  c.send("w\r\n\r\n");
  auto r = c.response();
  EXPECT_TRUE(r.starts_with("HTTP/1.1 200")) << r;
  EXPECT_EQ(Client::body(r), "/echo?z|w");
  // The connection stays usable for the fast path afterwards.
  c.send("GET /a HTTP/1.1\r\n\r\n");
  EXPECT_EQ(Client::body(c.response()), "A");
}

TEST(Server, AmbiguousFramingIsRefusedByTheFullParser) {
  Fixture f;
  Client c(f.server.port());
  c.send("GET /a HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /b HTTP/1.1\r\n\r\n");
  auto r = c.response();
  EXPECT_TRUE(r.starts_with("HTTP/1.1 400")) << r;
  EXPECT_EQ(c.response(), "");  // closed: the smuggled request is never answered
  EXPECT_EQ(f.refusals(), (std::vector<std::pair<int, std::string>>{{400, "127.0.0.1"}}));
}

TEST(Server, OversizedHeadGets431AndIsReportedAsRefused) {
  ServerLimits limits;
  limits.max_header_bytes = 1024;
  Fixture f(limits);
  Client c(f.server.port());
  c.send("GET /a HTTP/1.1\r\nX-Big: " + std::string(4096, 'a') + "\r\n\r\n");
  auto r = c.response();
  EXPECT_TRUE(r.starts_with("HTTP/1.1 431")) << r;
  EXPECT_EQ(f.refusals(), (std::vector<std::pair<int, std::string>>{{431, "127.0.0.1"}}));
  Client ok(f.server.port());  // an ordinary request is no refusal
  ok.send("GET /a HTTP/1.1\r\n\r\n");
  EXPECT_EQ(Client::body(ok.response()), "A");
  EXPECT_EQ(f.refusals().size(), 1u);
}

TEST(Server, Http10WithoutKeepAliveIsClosedAfterTheAnswer) {
  Fixture f;
  Client c(f.server.port());
  c.send("GET /a HTTP/1.0\r\n\r\n");
  auto r = c.response();
  EXPECT_TRUE(r.starts_with("HTTP/1.0 200")) << r;
  EXPECT_NE(r.find("Connection: close"), std::string::npos) << r;
  EXPECT_EQ(c.response(), "");
}

TEST(Server, IdleKeepAliveConnectionIsClosedAfterTheIdleTimeout) {
  ServerLimits limits;
  limits.idle_timeout = 400ms;
  Fixture f(limits);
  Client c(f.server.port());
  c.send("GET /a HTTP/1.1\r\n\r\n");
  EXPECT_EQ(Client::body(c.response()), "A");
  EXPECT_FALSE(c.closed_within(200ms));
  EXPECT_TRUE(c.closed_within(1500ms));
}

TEST(Server, IncompleteHeadIsClosedAfterTheHeaderTimeout) {
  ServerLimits limits;
  limits.header_timeout = 400ms;
  Fixture f(limits);
  Client c(f.server.port());
  c.send("GET /a HTTP/1.1\r\nX-Slow: a");
  EXPECT_FALSE(c.closed_within(200ms));
  EXPECT_TRUE(c.closed_within(1500ms));
  EXPECT_EQ(f.refusals(), (std::vector<std::pair<int, std::string>>{{408, "127.0.0.1"}}));
}

TEST(Server, HeldAnswersGoToTheirOwnRequestsOnAReusedConnection) {
  Fixture f;
  Client c(f.server.port());
  // The first request's hold expires; its answer then comes too late and must go nowhere.
  c.send("GET /held?keep HTTP/1.1\r\n\r\n");
  auto first = c.response();
  EXPECT_TRUE(first.starts_with("HTTP/1.1 503")) << first;
  {
    std::lock_guard lock(f.mu);
    ASSERT_TRUE(f.kept);
    (*f.kept)(Response::text(200, "stale"));
  }
  for (int i = 0; i < 3; ++i) {
    c.send("GET /held?" + std::to_string(i) + " HTTP/1.1\r\n\r\n");
    EXPECT_EQ(Client::body(c.response()), "answer " + std::to_string(i));
  }
}

TEST(Server, BatchAnswersEveryHeldRequestOnceAndFirstAnswerWins) {
  net::IoPool pool(2);
  Server server(pool, net::Endpoint{"127.0.0.1", 0});
  std::mutex mu;
  std::vector<Responder> held;
  server.route_held("GET", "/w", 5s, Response::text(503, "late\n"), [&](const Request&, Responder res) {
    std::lock_guard lock(mu);
    held.push_back(res);
  });
  pool.start();
  server.start();
  std::vector<std::unique_ptr<Client>> clients;
  for (int i = 0; i < 6; ++i) {
    clients.push_back(std::make_unique<Client>(server.port()));
    clients.back()->send("GET /w HTTP/1.1\r\n\r\n");
  }
  for (int i = 0; i < 200; ++i) {
    {
      std::lock_guard lock(mu);
      if (held.size() == 6) break;
    }
    std::this_thread::sleep_for(10ms);
  }
  std::vector<Responder> now;
  {
    std::lock_guard lock(mu);
    now = held;
  }
  ASSERT_EQ(now.size(), 6u);
  now[0](Response::text(200, "single"));  // answered before the batch: the batch's answer is dropped
  ResponderBatch batch;
  for (auto& r : now) batch.add(r, Response::text(200, "batch"));
  batch.send();
  // Each client gets exactly one answer: one of them the single answer, every other the batch's.
  std::map<std::string, int> bodies;
  for (auto& c : clients) ++bodies[Client::body(c->response())];
  EXPECT_EQ(bodies["single"], 1);
  EXPECT_EQ(bodies["batch"], 5);
  // Let both threads close their acceptors and connections before they stop: a listening socket
  // left open would keep its port in the SO_REUSEPORT group for the next test.
  server.stop();
  for (int i = 0; i < 200 && server.active_connections() > 0; ++i) std::this_thread::sleep_for(10ms);
  std::this_thread::sleep_for(50ms);
  pool.stop();
  pool.join();
}

}  // namespace
}  // namespace sf::http
