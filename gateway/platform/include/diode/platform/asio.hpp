#pragma once
// The one way into Asio. Boost 1.74's awaitable.hpp uses std::exchange
// without including <utility>; the macros live on the diode::asio target.
#include <utility>

#include <boost/asio.hpp>
