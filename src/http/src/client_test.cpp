#include "sf/http/client.h"

#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <fstream>
#include <set>
#include <sstream>

#include "sf/http/server.h"

namespace sf::http {
namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;

// Runs one client coroutine to completion on `ctx` (the test thread) and returns its result.
template <class T>
T run_on(asio::io_context& ctx, asio::awaitable<T> a) {
  std::optional<T> out;
  std::exception_ptr error;
  asio::co_spawn(ctx, std::move(a), [&](std::exception_ptr e, T v) {
    error = e;
    if (!e) out = std::move(v);
    ctx.stop();  // other coroutines (a canned server) may still wait: they resume on the next run
  });
  ctx.run_for(20s);
  ctx.restart();
  if (error) std::rethrow_exception(error);
  if (!out) ADD_FAILURE() << "client coroutine did not finish in 20 s";
  return std::move(*out);
}

// Distinct client ports of TCP connections to 127.0.0.1:`port` the kernel knows (open, or in
// TIME_WAIT on either side): how many connections the server has been offered in this test.
// Our Server does not expose peer ports to routes, so the kernel's table is the witness.

// A server with a few routes on one I/O thread, bound to a free port.
struct TestServer {
  explicit TestServer(ServerLimits limits = {}) : pool(1), server(pool, net::Endpoint{"127.0.0.1", 0}, limits) {
    server.route("GET", "/hello", [](Request&) { return Response::text(200, "hello world"); });
    server.route("GET", "/count", [this](Request&) { return Response::text(200, std::to_string(++requests)); });
    server.route("GET", "/big", [](Request&) { return Response::text(200, std::string(100 * 1024, 'x')); });
    // /len/<n>: n bytes of 'a'.
    server.route_prefix("GET", "/len/", [](Request& req) {
      return Response::text(200, std::string(std::stoul(req.path.substr(5)), 'a'));
    });
    // Answers after `slow_ms`, counting how many requests the server holds at once.
    server.route_held("GET", "/slow", 5s, Response::text(503, "late\n"), [this](const Request& req, Responder res) {
      int now = ++in_flight;
      int seen = max_in_flight.load();
      while (now > seen && !max_in_flight.compare_exchange_weak(seen, now)) {
      }
      auto timer = std::make_shared<asio::steady_timer>(req.executor, std::chrono::milliseconds(slow_ms));
      timer->async_wait([this, timer, res](const boost::system::error_code&) {
        --in_flight;
        res(Response::text(200, "slow"));
      });
    });
    // Never answered in time: the fallback comes after a minute.
    server.route_held("GET", "/held", 60s, Response::text(503, "late\n"), [](const Request&, Responder) {});
    pool.start();
    server.start();
  }
  ~TestServer() {
    server.stop();
    pool.stop();
    pool.join();
  }
  net::Endpoint endpoint() const { return {"127.0.0.1", server.port()}; }

  net::IoPool pool;
  Server server;
  std::atomic<int> requests{0};
  std::atomic<int> in_flight{0};
  std::atomic<int> max_in_flight{0};
  int slow_ms = 50;
};

TEST(Connection, GetReturnsStatusHeadersAndBody) {
  TestServer srv;
  asio::io_context ctx;
  Connection c(ctx.get_executor(), srv.endpoint());
  auto r = run_on(ctx, c.request("GET", "/hello"));
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(as_chars(r->body.view()), "hello world");
  EXPECT_EQ(r->header("content-length"), "11");
  EXPECT_EQ(r->header("server"), "streamflex");
  EXPECT_EQ(r->header("x-absent"), "");
}

TEST(Connection, BodiesOfEveryShortLengthComeBackExact) {
  // 16..29 bytes: just past std::string's inline buffer, where libstdc++ 12's resize_and_overwrite
  // reports the grown capacity.
  TestServer srv;
  asio::io_context ctx;
  Connection c(ctx.get_executor(), srv.endpoint());
  for (std::size_t n : {0, 1, 15, 16, 24, 29, 30, 31, 100}) {
    auto r = run_on(ctx, c.request("GET", "/len/" + std::to_string(n)));
    ASSERT_TRUE(r) << r.error().message();
    EXPECT_EQ(as_chars(r->body.view()), std::string(n, 'a')) << n;
  }
}

TEST(Connection, KeepAliveServesSeveralRequestsOnOneServerConnection) {
  TestServer srv;
  asio::io_context ctx;
  Connection c(ctx.get_executor(), srv.endpoint());
  for (int i = 1; i <= 5; ++i) {
    auto r = run_on(ctx, c.request("GET", "/count"));
    ASSERT_TRUE(r) << r.error().message();
    EXPECT_EQ(as_chars(r->body.view()), std::to_string(i));
  }
  EXPECT_EQ(srv.requests.load(), 5);
  EXPECT_TRUE(c.is_open());
  EXPECT_EQ(srv.server.active_connections(), 1u);  // the one kept-alive connection
}

TEST(Connection, NotFoundIsAResponseNotAnError) {
  TestServer srv;
  asio::io_context ctx;
  Connection c(ctx.get_executor(), srv.endpoint());
  auto r = run_on(ctx, c.request("GET", "/nope"));
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(r->status, 404);
  EXPECT_EQ(as_chars(r->body.view()), "not found\n");
}

TEST(Connection, HeadHasNoBody) {
  TestServer srv;
  asio::io_context ctx;
  Connection c(ctx.get_executor(), srv.endpoint());
  auto r = run_on(ctx, c.request("HEAD", "/big"));
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->header("content-length"), std::to_string(100 * 1024));
  EXPECT_TRUE(r->body.empty());
  auto again = run_on(ctx, c.request("GET", "/hello"));  // the connection is still in step
  ASSERT_TRUE(again);
  EXPECT_EQ(as_chars(again->body.view()), "hello world");
}

TEST(Connection, HeldRouteTimesOutThenTheConnectionRecovers) {
  TestServer srv;
  asio::io_context ctx;
  Connection c(ctx.get_executor(), srv.endpoint());
  auto t0 = std::chrono::steady_clock::now();
  auto r = run_on(ctx, c.request("GET", "/held", {}, 200ms));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), errc::timeout);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 5s);
  EXPECT_FALSE(c.is_open());
  auto next = run_on(ctx, c.request("GET", "/hello"));
  ASSERT_TRUE(next) << next.error().message();
  EXPECT_EQ(next->status, 200);
}

TEST(Connection, BodyAboveLimitIsMessageTooLarge) {
  TestServer srv;
  asio::io_context ctx;
  ClientLimits limits;
  limits.max_body_bytes = 10 * 1024;
  Connection c(ctx.get_executor(), srv.endpoint(), limits);
  auto r = run_on(ctx, c.request("GET", "/big"));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), errc::message_too_large);
}

TEST(Connection, LargeBodyArrivesWhole) {
  TestServer srv;
  asio::io_context ctx;
  Connection c(ctx.get_executor(), srv.endpoint());
  auto r = run_on(ctx, c.request("GET", "/big"));
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(r->body.size(), 100u * 1024);
  EXPECT_EQ(as_chars(r->body.view()), std::string(100 * 1024, 'x'));
}

TEST(Connection, DiscardedBodiesAreCountedNotKept) {
  TestServer srv;
  asio::io_context ctx;
  Connection c(ctx.get_executor(), srv.endpoint());
  c.discard_bodies(true);
  auto r = run_on(ctx, c.request("GET", "/big"));
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(r->body_bytes, 100u * 1024);
  EXPECT_TRUE(r->body.empty());
  c.discard_bodies(false);
  auto kept = run_on(ctx, c.request("GET", "/hello"));  // the connection is still in step
  ASSERT_TRUE(kept) << kept.error().message();
  EXPECT_EQ(as_chars(kept->body.view()), "hello world");
  EXPECT_EQ(kept->body_bytes, 11u);
}

TEST(Connection, RefusedConnectIsIoError) {
  std::uint16_t port;
  {
    asio::io_context tmp;
    asio::ip::tcp::acceptor a(tmp, {asio::ip::make_address("127.0.0.1"), 0});
    port = a.local_endpoint().port();
  }  // closed: nothing listens there now
  asio::io_context ctx;
  Connection c(ctx.get_executor(), {"127.0.0.1", port});
  auto r = run_on(ctx, c.request("GET", "/"));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), errc::io_error);
}

TEST(Connection, ServerClosedIdleConnectionIsReopened) {
  ServerLimits limits;
  limits.idle_timeout = 100ms;
  TestServer srv(limits);
  asio::io_context ctx;
  Connection c(ctx.get_executor(), srv.endpoint());
  ASSERT_TRUE(run_on(ctx, c.request("GET", "/count")));
  // Outlast the server's idle timeout: it closes the kept-alive connection.
  asio::steady_timer pause(ctx, 400ms);
  pause.wait();
  auto r = run_on(ctx, c.request("GET", "/count"));
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(as_chars(r->body.view()), "2");
}

TEST(Connection, PiecesAreSentAsOneBodyOnAKeptConnection) {
  TestServer srv;
  srv.server.route("POST", "/echo", [](Request& req) { return Response::text(200, req.body); });
  asio::io_context ctx;
  Pool pool(ctx.get_executor(), srv.endpoint(), 1);
  std::string big(70000, 'b');
  std::vector<Bytes> pieces{Bytes::copy_of(as_bytes(std::string_view("head|"))), Bytes(),
                            Bytes::copy_of(as_bytes(std::string_view(big))).share(10, 1000)};
  auto r = run_on(ctx, pool.request_with_pieces("POST", "/echo", {}, pieces));
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(as_chars(r->body.view()), "head|" + std::string(1000, 'b'));
  auto again = run_on(ctx, pool.request_with_pieces("POST", "/echo", {}, {pieces[0]}));
  ASSERT_TRUE(again) << again.error().message();
  EXPECT_EQ(as_chars(again->body.view()), "head|");
  EXPECT_EQ(pool.open_connections(), 1u);
}

TEST(Connection, RefusesLineBreaksInTheRequest) {
  asio::io_context ctx;
  Connection c(ctx.get_executor(), {"127.0.0.1", 1});
  auto r = run_on(ctx, c.request("GET", "/x", {{"X-Evil", "a\r\nInjected: 1"}}));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), errc::invalid_argument);
}

// A server that answers each request on one connection with the next canned reply, as raw bytes,
// then closes the connection (close_after) or keeps it open.
asio::awaitable<void> canned(asio::ip::tcp::acceptor& acceptor, std::vector<std::string> replies, bool close_after) {
  boost::system::error_code ec;
  auto sock = co_await acceptor.async_accept(asio::redirect_error(asio::use_awaitable, ec));
  if (ec) co_return;
  std::string in;
  for (auto& reply : replies) {
    auto n = co_await asio::async_read_until(sock, asio::dynamic_buffer(in), "\r\n\r\n",
                                             asio::redirect_error(asio::use_awaitable, ec));
    if (ec) co_return;
    in.erase(0, n);
    co_await asio::async_write(sock, asio::buffer(reply), asio::redirect_error(asio::use_awaitable, ec));
    if (ec) co_return;
  }
  if (close_after) {
    sock.shutdown(asio::ip::tcp::socket::shutdown_both, ec);
    co_return;
  }
  char byte;
  co_await sock.async_read_some(asio::buffer(&byte, 1), asio::redirect_error(asio::use_awaitable, ec));
}

struct CannedServer {
  CannedServer(asio::io_context& ctx, std::vector<std::string> replies, bool close_after = false)
      : acceptor(ctx, {asio::ip::make_address("127.0.0.1"), 0}) {
    asio::co_spawn(ctx, canned(acceptor, std::move(replies), close_after), asio::detached);
  }
  net::Endpoint endpoint() const { return {"127.0.0.1", acceptor.local_endpoint().port()}; }
  asio::ip::tcp::acceptor acceptor;
};

TEST(ConnectionFraming, ChunkedBodyIsDecodedAndTheConnectionKept) {
  asio::io_context ctx;
  std::string chunked = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n";
  CannedServer srv(ctx, {chunked, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"});
  Connection c(ctx.get_executor(), srv.endpoint());
  auto r = run_on(ctx, c.request("GET", "/"));
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(as_chars(r->body.view()), "hello world");
  EXPECT_EQ(r->header("transfer-encoding"), "chunked");
  EXPECT_TRUE(c.is_open());
  auto again = run_on(ctx, c.request("GET", "/"));
  ASSERT_TRUE(again) << again.error().message();
  EXPECT_EQ(as_chars(again->body.view()), "ok");
}

TEST(ConnectionFraming, BodyDelimitedByCloseIsReadToTheEnd) {
  asio::io_context ctx;
  CannedServer srv(ctx, {"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end"}, true);
  Connection c(ctx.get_executor(), srv.endpoint());
  auto r = run_on(ctx, c.request("GET", "/"));
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(as_chars(r->body.view()), "until the end");
  EXPECT_FALSE(c.is_open());
}

TEST(ConnectionFraming, ConnectionCloseIsHonoured) {
  asio::io_context ctx;
  CannedServer srv(ctx, {"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"});
  Connection c(ctx.get_executor(), srv.endpoint());
  auto r = run_on(ctx, c.request("GET", "/"));
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(as_chars(r->body.view()), "ok");
  EXPECT_FALSE(c.is_open());
}

TEST(ConnectionFraming, InterimResponseIsSkipped) {
  asio::io_context ctx;
  CannedServer srv(ctx, {"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok"});
  Connection c(ctx.get_executor(), srv.endpoint());
  auto r = run_on(ctx, c.request("GET", "/"));
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(r->status, 201);
  EXPECT_EQ(as_chars(r->body.view()), "ok");
}

TEST(ConnectionFraming, MalformedHeadsAreRefused) {
  for (std::string reply : {"HTTX/1.1 200 OK\r\n\r\n", "HTTP/1.1 2x0 OK\r\n\r\n",
                            "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabc",
                            "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
                            "HTTP/1.1 200 OK\r\nX-A: 1\r\n folded\r\n\r\n", "HTTP/1.1 200 OK\r\nNo colon\r\n\r\n"}) {
    asio::io_context ctx;
    CannedServer srv(ctx, {reply});
    Connection c(ctx.get_executor(), srv.endpoint());
    auto r = run_on(ctx, c.request("GET", "/"));
    ASSERT_FALSE(r) << reply;
    EXPECT_EQ(r.error(), errc::malformed) << reply;
    EXPECT_FALSE(c.is_open());
  }
}

TEST(ConnectionFraming, HeadAboveLimitIsMessageTooLarge) {
  asio::io_context ctx;
  CannedServer srv(ctx, {"HTTP/1.1 200 OK\r\nX-Big: " + std::string(20000, 'a') + "\r\nContent-Length: 0\r\n\r\n"});
  Connection c(ctx.get_executor(), srv.endpoint());
  auto r = run_on(ctx, c.request("GET", "/"));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), errc::message_too_large);
}

TEST(ConnectionFraming, EndOfConnectionMidBodyIsClosed) {
  asio::io_context ctx;
  CannedServer srv(ctx, {"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc"}, true);
  Connection c(ctx.get_executor(), srv.endpoint());
  auto r = run_on(ctx, c.request("GET", "/"));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), errc::closed);
}

// An upstream that sends a chunked body in `chunks`, `gap` apart (the head with the first), and
// then the last-chunk, or resets the connection instead when `break_off`.
asio::awaitable<void> trickle_chunked(asio::ip::tcp::acceptor& acceptor, std::vector<std::string> chunks,
                                      std::chrono::milliseconds gap, bool break_off) {
  boost::system::error_code ec;
  auto sock = co_await acceptor.async_accept(asio::redirect_error(asio::use_awaitable, ec));
  if (ec) co_return;
  std::string in;
  co_await asio::async_read_until(sock, asio::dynamic_buffer(in), "\r\n\r\n",
                                  asio::redirect_error(asio::use_awaitable, ec));
  if (ec) co_return;
  std::string out = "HTTP/1.1 200 OK\r\nContent-Type: video/iso.segment\r\nTransfer-Encoding: chunked\r\n\r\n";
  asio::steady_timer timer(sock.get_executor());
  for (std::size_t i = 0; i < chunks.size(); ++i) {
    if (i > 0) {
      timer.expires_after(gap);
      co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    }
    char size[16];
    std::snprintf(size, sizeof(size), "%zx\r\n", chunks[i].size());
    out += size + chunks[i] + "\r\n";
    co_await asio::async_write(sock, asio::buffer(out), asio::redirect_error(asio::use_awaitable, ec));
    out.clear();
    if (ec) co_return;
  }
  if (break_off) {
    sock.set_option(asio::socket_base::linger(true, 0), ec);
    sock.close(ec);
    co_return;
  }
  co_await asio::async_write(sock, asio::buffer(std::string_view("0\r\n\r\n")),
                             asio::redirect_error(asio::use_awaitable, ec));
  char byte;
  co_await sock.async_read_some(asio::buffer(&byte, 1), asio::redirect_error(asio::use_awaitable, ec));
}

// What OnHead saw of a chunked body: the body, and its size and state at each later wake-up.
struct ChunkedWatch {
  std::shared_ptr<ChunkedBody> body;
  bool sized = false;
  std::vector<std::size_t> sizes_before_end;  // body sizes seen while it had not ended
};

// Records every progress step of `w.body` until it ends or fails.
void follow(asio::io_context& ctx, ChunkedWatch& w, std::size_t from) {
  w.body->when_beyond(from, ctx.get_executor(), [&ctx, &w] {
    std::vector<Bytes> ignored;
    auto p = w.body->read(0, ignored);
    if (!p.ended && !p.failed) w.sizes_before_end.push_back(w.body->size());
    if (!p.ended && !p.failed) follow(ctx, w, p.next);
  });
}

OnHead watch_chunked(asio::io_context& ctx, ChunkedWatch& w) {
  return [&ctx, &w](const ClientResponse&, const ArrivingBody& body) {
    w.sized = body.sized != nullptr;
    w.body = body.chunked;
    if (w.body) follow(ctx, w, 0);
  };
}

TEST(ConnectionStreaming, ChunkedBodyIsHandedOnPieceByPieceBeforeItEnds) {
  asio::io_context ctx;
  asio::ip::tcp::acceptor acceptor(ctx, {asio::ip::make_address("127.0.0.1"), 0});
  std::vector<std::string> chunks{std::string(3000, 'a'), std::string(5000, 'b'), std::string(7000, 'c')};
  asio::co_spawn(ctx, trickle_chunked(acceptor, chunks, 100ms, false), asio::detached);
  Connection c(ctx.get_executor(), {"127.0.0.1", acceptor.local_endpoint().port()});
  ChunkedWatch w;
  auto r = run_on(ctx, c.request("GET", "/live/s/video/s1.m4s", {}, 5s, watch_chunked(ctx, w)));
  ASSERT_TRUE(r) << r.error().message();
  ASSERT_TRUE(w.body) << "OnHead was not given the chunked body";
  EXPECT_FALSE(w.sized);
  EXPECT_TRUE(w.body->ended());
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(as_chars(r->body.view()), chunks[0] + chunks[1] + chunks[2]);
  EXPECT_EQ(r->body_bytes, 15000u);
  std::string pieces;
  for (auto& p : w.body->pieces()) pieces += as_chars(p.view());
  EXPECT_EQ(pieces, chunks[0] + chunks[1] + chunks[2]);
  // The first chunk and the first two were each there on their own, before the body ended.
  auto& seen = w.sizes_before_end;
  EXPECT_NE(std::find(seen.begin(), seen.end(), 3000u), seen.end()) << ::testing::PrintToString(seen);
  EXPECT_NE(std::find(seen.begin(), seen.end(), 8000u), seen.end()) << ::testing::PrintToString(seen);
  EXPECT_TRUE(c.is_open());  // the connection is kept for the next request
}

TEST(ConnectionStreaming, ChunkedBodyBrokenOffFailsTheBodyAndTheRequest) {
  asio::io_context ctx;
  asio::ip::tcp::acceptor acceptor(ctx, {asio::ip::make_address("127.0.0.1"), 0});
  asio::co_spawn(ctx, trickle_chunked(acceptor, {"first", "second"}, 50ms, true), asio::detached);
  Connection c(ctx.get_executor(), {"127.0.0.1", acceptor.local_endpoint().port()});
  ChunkedWatch w;
  auto r = run_on(ctx, c.request("GET", "/", {}, 5s, watch_chunked(ctx, w)));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), errc::closed);
  ASSERT_TRUE(w.body);
  EXPECT_TRUE(w.body->failed());
  EXPECT_FALSE(w.body->ended());
  EXPECT_EQ(w.body->size(), 11u);  // what came is kept, but never looks complete
}

// A streamed chunked body lasts as long as its producer makes it (a live segment): the request's
// timeout bounds each wait for more of it, not the whole body; a stall past it fails the body.
TEST(ConnectionStreaming, ChunkedBodyTimeoutBoundsEachStallNotTheWholeBody) {
  {
    asio::io_context ctx;
    asio::ip::tcp::acceptor acceptor(ctx, {asio::ip::make_address("127.0.0.1"), 0});
    asio::co_spawn(ctx, trickle_chunked(acceptor, std::vector<std::string>(8, "x"), 150ms, false), asio::detached);
    Connection c(ctx.get_executor(), {"127.0.0.1", acceptor.local_endpoint().port()});
    ChunkedWatch w;
    auto r = run_on(ctx, c.request("GET", "/", {}, 500ms, watch_chunked(ctx, w)));  // ~1 s in all
    ASSERT_TRUE(r) << r.error().message();
    EXPECT_EQ(as_chars(r->body.view()), "xxxxxxxx");
  }
  {
    asio::io_context ctx;
    asio::ip::tcp::acceptor acceptor(ctx, {asio::ip::make_address("127.0.0.1"), 0});
    asio::co_spawn(ctx, trickle_chunked(acceptor, {"x", "y"}, 1500ms, false), asio::detached);
    Connection c(ctx.get_executor(), {"127.0.0.1", acceptor.local_endpoint().port()});
    ChunkedWatch w;
    auto r = run_on(ctx, c.request("GET", "/", {}, 300ms, watch_chunked(ctx, w)));
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error(), errc::timeout);
    ASSERT_TRUE(w.body);
    EXPECT_TRUE(w.body->failed());
  }
}

TEST(ConnectionStreaming, ContentLengthBodyIsHandedOnAsASizedBody) {
  asio::io_context ctx;
  CannedServer srv(ctx, {"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"});
  Connection c(ctx.get_executor(), srv.endpoint());
  ArrivingBody seen;
  auto r = run_on(ctx, c.request("GET", "/", {}, 5s, [&](const ClientResponse&, const ArrivingBody& b) { seen = b; }));
  ASSERT_TRUE(r) << r.error().message();
  ASSERT_TRUE(seen.sized);
  EXPECT_FALSE(seen.chunked);
  EXPECT_TRUE(seen.sized->complete());
  EXPECT_EQ(as_chars(r->body.view()), "hello");
}

asio::awaitable<std::vector<Result<ClientResponse>>> concurrent(Pool& pool, int n, std::string target) {
  auto ex = co_await asio::this_coro::executor;
  std::vector<std::optional<Result<ClientResponse>>> slots(n);
  int done = 0;
  asio::steady_timer all_done(ex, asio::steady_timer::time_point::max());
  for (int i = 0; i < n; ++i)
    asio::co_spawn(ex, pool.request("GET", target), [&, i](std::exception_ptr, Result<ClientResponse> r) {
      slots[i] = std::move(r);
      if (++done == n) all_done.cancel();
    });
  boost::system::error_code ec;
  co_await all_done.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  std::vector<Result<ClientResponse>> out;
  for (auto& s : slots) out.push_back(std::move(*s));
  co_return out;
}

TEST(Pool, TenConcurrentRequestsShareThreeConnections) {
  TestServer srv;
  asio::io_context ctx;
  Pool pool(ctx.get_executor(), srv.endpoint(), 3);
  auto results = run_on(ctx, concurrent(pool, 10, "/slow"));
  ASSERT_EQ(results.size(), 10u);
  for (auto& r : results) {
    ASSERT_TRUE(r) << r.error().message();
    EXPECT_EQ(r->status, 200);
  }
  EXPECT_LE(pool.open_connections(), 3u);
  EXPECT_LE(srv.max_in_flight.load(), 3);
  EXPECT_GE(srv.max_in_flight.load(), 2);  // they did run side by side
  EXPECT_LE(srv.server.active_connections(), 3u);
}

TEST(Pool, RefusesWaitersBeyondTheLimit) {
  TestServer srv;
  srv.slow_ms = 200;
  asio::io_context ctx;
  Pool pool(ctx.get_executor(), srv.endpoint(), 1, 1);
  auto results = run_on(ctx, concurrent(pool, 3, "/slow"));
  int ok = 0, refused = 0;
  for (auto& r : results) {
    if (r)
      ++ok;
    else if (r.error() == errc::limit_exceeded)
      ++refused;
  }
  EXPECT_EQ(ok, 2);
  EXPECT_EQ(refused, 1);
}

TEST(Pool, WaitingCountsAgainstTheTimeout) {
  TestServer srv;
  asio::io_context ctx;
  ClientLimits quick;
  quick.timeout = 150ms;
  Pool pool(ctx.get_executor(), srv.endpoint(), 1, 10, quick);
  auto results = run_on(ctx, concurrent(pool, 2, "/held"));
  for (auto& r : results) {
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error(), errc::timeout);
  }
  EXPECT_EQ(pool.waiting(), 0u);
}

TEST(Pool, AbortEndsRequestsInFlightAndWaitingAndThePoolGoesOn) {
  TestServer srv;
  asio::io_context ctx;
  Pool pool(ctx.get_executor(), srv.endpoint(), 2, 10);
  // Three requests held by the server (two on connections, one waiting for one); abort() after
  // 100 ms, long before the server's minute.
  asio::steady_timer later(ctx, 100ms);
  later.async_wait([&](const boost::system::error_code&) { pool.abort(); });
  auto t0 = std::chrono::steady_clock::now();
  auto results = run_on(ctx, concurrent(pool, 3, "/held"));
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 5s);
  ASSERT_EQ(results.size(), 3u);
  for (auto& r : results) {
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error(), errc::closed);
  }
  EXPECT_EQ(pool.waiting(), 0u);
  auto r = run_on(ctx, pool.request("GET", "/hello"));
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(r->status, 200);
}

}  // namespace
}  // namespace sf::http
