# Concurrent Servers Lab.
#   make 05-select (or make 05)   build one chapter's server
#   make all                      every chapter and the load generator (with SANITIZE: the chapters only)
#   make check                    the lab's own tests: every chapter graded, every broken server caught
#   make sync                     copy the shared code (harness/common, 01's and 07's reused lessons) into every chapter
#   make hint CH=05 [N=2]         chapter 05's hints, one at a time: from a nudge to the near-answer for each TODO
#   make handout DEST=dir         the student's tree: starters as server.c, no reference [CHAPTERS="01 02"] [BUGHUNT=1]
#                                 [LANG=fr: in French: documents, starters' comments, hints; a French LANG does it too]
#   make classroom CH=05 DEST=dir a template repository: 05's handout, graded on every push by GitHub Classroom
#                                 (.github/workflows/classroom.yml) and GitLab CI (.gitlab-ci.yml)
#   make broken CH=05 N=2         bug hunt: a broken server of chapter 05 in bughunt/05-2 [ANSWER=1: its mistake]
#   make hostile                  the hostile submissions graded as a class, as root and as nobody: the sandbox holds
#   make correct                  the correct servers written apart from the reference, every check (slow ones too)
#   make gradescope CH=05         Gradescope's autograder of chapter 05: gradescope-05.zip [QUICK=1: slow checks
#                                 skipped] [EXTRA=dir: your hidden checks] [ZIP=path] (harness/gradescope/make-zip)
#                                 [LEADERBOARD=1: 07/08's messages/s on Gradescope's leaderboard, no points]
#   make bench [QUICK=1]          the text's tables measured here (harness/bench/run), in bench-results/
#                                 [ARGS="07 08 --clients 100,1000"]: any option of harness/bench/run
#   make clean
#   make 07 SANITIZE=thread       a sanitizer build, in 07-epoll/server-thread

# The chapters are the directories 01-* ... 08-* (harness/run finds them the same way).
CHAPTER_DIRS := $(sort $(patsubst %/server.c,%,$(wildcard 0[1-9]-*/server.c)))
CC       ?= cc
# The flags every server is graded with (harness/lib/cflags): gnu11 for accept4 and friends,
# -g so that valgrind and the sanitizers name lines, -Werror so that a warning is a failure.
CFLAGS   := $(shell cat harness/lib/cflags)

# A sanitizer build is a chapter's server only, at its own path: the load generator and the
# normal servers are never replaced by instrumented ones.
SANITIZE ?=
ifeq ($(SANITIZE),)
  SUFFIX :=
  SANFLAGS :=
else ifeq ($(SANITIZE),address)
  SUFFIX := -address
  SANFLAGS := -O1 -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all
else ifeq ($(SANITIZE),undefined)
  SUFFIX := -undefined
  SANFLAGS := -O1 -fsanitize=undefined -fno-sanitize-recover=all
else ifeq ($(SANITIZE),thread)
  SUFFIX := -thread
  SANFLAGS := -O1 -fsanitize=thread
else
  $(error SANITIZE must be address, undefined or thread, not '$(SANITIZE)')
endif

.PHONY: all check clean setup sync hint handout classroom broken gradescope hostile correct bench $(CHAPTER_DIRS) $(foreach c,$(CHAPTER_DIRS),$(firstword $(subst -, ,$(c)))) loadgen

all: $(CHAPTER_DIRS) $(if $(SANITIZE),,loadgen)

# One target per chapter, and its two-digit alias: make 05-select, make 05.
define chapter_rules
$(1): $(1)/server$(SUFFIX)
$(firstword $(subst -, ,$(1))): $(1)
$(1)/server$(SUFFIX): $(1)/server.c harness/lib/cflags | setup
	$$(CC) $$(CFLAGS) $$(SANFLAGS) -o $$@ $$<
endef
$(foreach c,$(CHAPTER_DIRS),$(eval $(call chapter_rules,$(c))))

loadgen: harness/loadgen/loadgen
harness/loadgen/loadgen: harness/loadgen/loadgen.c harness/lib/cflags | setup
	$(CC) $(CFLAGS) -o $@ $<

# Every chapter, the load generator, gnuplot (and perf where it installs), then the runs: 14
# minutes on two cores (14 min 7 s measured), under a minute with QUICK=1. The Node.js and Python asyncio
# peers run when they are installed.
bench: all
	@harness/setup --bench
	@harness/bench/run --peers $(if $(QUICK),--quick) $(ARGS)

# A starter's TODO says what to write; its chapter's hints.md says how, one hint at a time.
hint:
	@harness/hint $(CH) $(N)

# Installs what is missing (as root), or says what to install and stops.
setup:
	@harness/setup

# The shared code is written once (harness/common/, and the lessons 02-04 and 08 reuse from 01 and
# 07) and copied between the marked lines of every chapter; the selftest fails if a copy differs.
ifneq ($(wildcard harness/selftest),)
sync:
	@harness/sync

check: all
	@harness/setup --check
	@harness/selftest

handout:
	@harness/handout "$(DEST)" $(if $(CHAPTERS),--chapters "$(CHAPTERS)") $(if $(BUGHUNT),--bughunt) --lang "$(LANG)"

broken:
	@harness/bughunt $(CH) $(N) $(if $(ANSWER),--answer)

# A template repository for GitHub Classroom and GitLab CI: the chapter's handout and the two CI
# files that grade each push (harness/tests/classroom-selftest tries both).
classroom:
	@harness/classroom "$(CH)" "$(DEST)"

# Gradescope's autograder of one chapter: setup.sh and run_autograder at the zip's top level, the
# grader beside them, no chapter's code (harness/tests/gradescope-selftest tries it on a fake tree).
# The whole hostile set, as root and as nobody; then --teeth: without the sandbox the same checks
# must fail (the writer's files, in this tree too, are removed afterwards); then --teeth-inner:
# without the submission's own sandbox, the /proc reader's, the socket prober's and the setsid()
# spinner's checks must fail.
# Every correct server of harness/tests/correct/ graded with every check, the slow ones too (make
# check grades them with --quick): about 20 minutes.
correct:
	@CORRECT_FULL=1 harness/selftest --only correct

hostile:
	@harness/tests/hostile/run --jobs 2 && harness/tests/hostile/run --teeth --jobs 2 && harness/tests/hostile/run --teeth-inner --jobs 2

gradescope:
	@harness/gradescope/make-zip "$(CH)" $(if $(filter-out 0,$(QUICK)),--quick) $(if $(EXTRA),--extra "$(EXTRA)") $(if $(filter-out 0,$(LEADERBOARD)),--leaderboard) --lang "$(LANG)" $(if $(ZIP),--zip "$(ZIP)")
else
# A student handout (make handout) has neither the reference solutions nor the lab's own tests.
check sync handout classroom broken gradescope hostile correct:
	@echo "make $@: not in a student handout, which has no reference solutions and no lab tests"; exit 2
endif

clean:
	rm -f $(foreach c,$(CHAPTER_DIRS),$(c)/server $(c)/server-address $(c)/server-undefined $(c)/server-thread)
	rm -f harness/loadgen/loadgen
	rm -rf harness/tests/build bughunt
	rm -f gradescope-*.zip
