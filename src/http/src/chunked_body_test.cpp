#include "sf/http/chunked_body.h"

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>

#include <memory>
#include <string>
#include <vector>

namespace sf::http {
namespace {

namespace asio = boost::asio;

Bytes piece(std::string_view s) {
  return Bytes::copy_of(as_bytes(s));
}

std::string joined(const std::vector<Bytes>& pieces) {
  std::string s;
  for (auto& p : pieces) s += as_chars(p.view());
  return s;
}

TEST(ChunkedBody, ReadsHandOutThePiecesAfterAPositionSharedNotCopied) {
  ChunkedBody body;
  body.append(piece("hello"));
  body.append(piece(""));  // ignored: an empty piece would end a chunked body early
  body.append(piece(" world"));
  std::vector<Bytes> out;
  auto p = body.read(0, out);
  EXPECT_EQ(p.next, 2u);
  EXPECT_FALSE(p.ended);
  EXPECT_FALSE(p.failed);
  EXPECT_EQ(joined(out), "hello world");
  EXPECT_EQ(out[0].data(), body.pieces()[0].data());  // the same block
  out.clear();
  p = body.read(1, out);
  EXPECT_EQ(joined(out), " world");
  out.clear();
  p = body.read(2, out);
  EXPECT_TRUE(out.empty());
  EXPECT_EQ(p.next, 2u);
  EXPECT_EQ(body.size(), 11u);
  body.end();
  p = body.read(2, out);
  EXPECT_TRUE(p.ended);
  EXPECT_TRUE(body.ended());
  body.fail();  // too late: an ended body stays complete
  EXPECT_FALSE(body.failed());
}

TEST(ChunkedBody, WaitersAreWokenOnceByTheNextPieceTheEndOrAFailure) {
  asio::io_context ctx;
  ChunkedBody body;
  int woken = 0;
  body.when_beyond(0, ctx.get_executor(), [&] { ++woken; });
  body.when_beyond(0, ctx.get_executor(), [&] { ++woken; });
  ctx.poll();
  ctx.restart();
  EXPECT_EQ(woken, 0);  // nothing yet
  body.append(piece("a"));
  ctx.poll();
  ctx.restart();
  EXPECT_EQ(woken, 2);
  body.when_beyond(0, ctx.get_executor(), [&] { ++woken; });  // behind already: at once
  ctx.poll();
  ctx.restart();
  EXPECT_EQ(woken, 3);
  body.when_beyond(1, ctx.get_executor(), [&] { ++woken; });
  body.fail();
  ctx.poll();
  ctx.restart();
  EXPECT_EQ(woken, 4);
  EXPECT_TRUE(body.failed());
  std::vector<Bytes> out;
  EXPECT_TRUE(body.read(1, out).failed);
  body.append(piece("late"));  // a failed body takes nothing more
  EXPECT_EQ(body.size(), 1u);
  body.end();
  EXPECT_FALSE(body.ended());
}

TEST(ChunkedBody, OnAppendIsToldEachPublishedPieceUntilTheBodyFinishes) {
  for (bool ends : {true, false}) {
    ChunkedBody body;
    body.append(piece("before"));  // not told: nobody was listening yet
    std::vector<std::size_t> told;
    auto owner = std::make_shared<int>(0);  // what the callback captures
    std::weak_ptr<int> watch = owner;
    body.on_append([&told, owner](std::size_t n) { told.push_back(n); });
    owner.reset();
    body.append(piece("abc"));
    body.append(piece(""));  // ignored, not told
    body.append(piece("de"));
    EXPECT_EQ(told, (std::vector<std::size_t>{3, 2}));
    EXPECT_FALSE(watch.expired());
    if (ends)
      body.end();
    else
      body.fail();
    EXPECT_TRUE(watch.expired()) << "the callback outlived the body's " << (ends ? "end" : "failure");
    body.append(piece("late"));
    EXPECT_EQ(told.size(), 2u);
  }
}

TEST(ChunkedBody, WhenFinishedWakesOnceAtTheEndOrFailureNotPerPiece) {
  for (bool ends : {true, false}) {
    asio::io_context ctx;
    ChunkedBody body;
    int woken = 0;
    body.when_finished(ctx.get_executor(), [&] { ++woken; });
    body.append(piece("a"));
    body.append(piece("b"));
    ctx.poll();
    ctx.restart();
    EXPECT_EQ(woken, 0);  // pieces are not the end
    if (ends)
      body.end();
    else
      body.fail();
    ctx.poll();
    ctx.restart();
    EXPECT_EQ(woken, 1);
    body.when_finished(ctx.get_executor(), [&] { ++woken; });  // finished already: at once
    ctx.poll();
    EXPECT_EQ(woken, 2);
  }
}

TEST(ChunkedBody, HeldFailureLeavesConsumersWaitingUntilTheOwnerContinuesOrGivesUp) {
  for (bool continued : {true, false}) {
    asio::io_context ctx;
    ChunkedBody body;
    std::size_t grown = 0;
    body.on_append([&](std::size_t n) { grown += n; });
    body.hold_failure();
    body.append(piece("ab"));
    body.fail();
    EXPECT_TRUE(body.broken());
    EXPECT_FALSE(body.failed());
    int finished = 0, beyond = 0;
    body.when_finished(ctx.get_executor(), [&] { ++finished; });
    body.when_beyond(1, ctx.get_executor(), [&] { ++beyond; });
    ctx.poll();
    ctx.restart();
    EXPECT_EQ(finished + beyond, 0) << "a held failure must wake no one";
    if (continued) {
      body.append(piece("cd"));  // from another upstream
      EXPECT_FALSE(body.broken());
      body.end();
      EXPECT_EQ(grown, 4u) << "the cache is told of the continued pieces too";
      EXPECT_EQ(joined(body.pieces()), "abcd");
      EXPECT_EQ(as_chars(body.joined().view()), "abcd");
      EXPECT_TRUE(body.ended());
    } else {
      body.fail_now();
      EXPECT_TRUE(body.failed());
    }
    ctx.poll();
    EXPECT_EQ(finished, 1);
    EXPECT_EQ(beyond, 1);
  }
}

}  // namespace
}  // namespace sf::http
