#include <catch2/catch.hpp>

#include "diode/sockd/rules.hpp"

using namespace diode::sockd;

TEST_CASE("port operators", "[sockd][rules]") {
  CHECK(PortTest{PortOp::Any, 0, 0, {}}.matches(1));
  CHECK(PortTest{PortOp::Eq, 23, 0, {}}.matches(23));
  CHECK_FALSE(PortTest{PortOp::Neq, 23, 0, {}}.matches(23));
  CHECK(PortTest{PortOp::Lt, 1024, 0, {}}.matches(1023));
  CHECK_FALSE(PortTest{PortOp::Gt, 1024, 0, {}}.matches(1024));
  CHECK(PortTest{PortOp::Le, 1024, 0, {}}.matches(1024));
  CHECK(PortTest{PortOp::Ge, 1024, 0, {}}.matches(1024));
  CHECK(PortTest{PortOp::Range, 1000, 2000, {}}.matches(2000));
  CHECK_FALSE(PortTest{PortOp::Range, 1000, 2000, {}}.matches(999));
}

TEST_CASE("user lists", "[sockd][rules]") {
  UserList any;
  CHECK(any.contains("whoever"));
  UserList some;
  some.any = false;
  some.names = {"bonnie", "clyde"};
  some.file_users = {"ylee"};
  CHECK(some.contains("clyde"));
  CHECK(some.contains("ylee"));
  CHECK_FALSE(some.contains("jane"));
}
