# A headless browser for the page's test (tests/local/test_page_browser.py): Chromium and its driver from
# Debian's packages, driven from Python by selenium (dev group). Included by the main Makefile.
# Installs only what is missing; without root (or sudo) it says so and the browser test is skipped.

CHROMIUM_PACKAGES := chromium chromium-driver

.PHONY: browser

browser: ## Chromium and chromedriver for the page's browser test (Debian packages; skipped when present)
	@if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then \
		echo "chromium and chromedriver present"; \
	elif [ "$$(id -u)" = 0 ]; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(CHROMIUM_PACKAGES); \
	elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then \
		sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(CHROMIUM_PACKAGES); \
	else \
		echo "make browser: cannot install $(CHROMIUM_PACKAGES) without root; the page's browser test will be skipped" >&2; \
	fi

TEST_CHECKS += browser
