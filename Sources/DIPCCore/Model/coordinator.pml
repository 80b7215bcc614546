/*
 * A Promela model of DIPC's readers-writer coordinator, one mailbox, both policies.
 * It models Coordinator.swift, CoordinatorFIFOAdmission.swift and
 * CoordinatorPhaseFairAdmission.swift (checked with spin by `make verify`).
 *
 *   spin -a [-DPHASEFAIR] [-DNR=2 -DNW=2] coordinator.pml
 *
 * What is modelled
 * - The record's fields (next, serving, writer, activeReaders, ticketHolders,
 *   blockedReaders, phase) and every section the code runs holding the record's
 *   robust mutex, each as one atomic step (the mutex serialises them; they touch
 *   nothing else that another process reads without the mutex).
 * - The futex protocol exactly as the code uses it: a waiter observes the wake word
 *   under the mutex, unlocks, then FUTEX_WAITs on the observed value; a releaser
 *   bumps the word under the mutex and FUTEX_WAKEs everyone after unlocking. The wake
 *   word is modelled without wrap-around: notified[p] says "the word changed since p
 *   observed it" (so FUTEX_WAIT returns at once), asleep[p] says p sleeps in the
 *   kernel until the next FUTEX_WAKE. The 100 ms liveness timeout of the real waits
 *   is NOT modelled: progress here never relies on a timeout, so a lost wake-up would
 *   show as a deadlock or a starvation cycle.
 * - Ticket counters are modulo TICKETS (more than the number of processes, enough
 *   for equality tests); the phase counter is modulo 2 (a blocked reader is admitted
 *   by the first phase change, and no second one can happen before it returns).
 *
 * What is not modelled: crashes and recovery (purge, epochs, repair after a dead
 * mutex owner), the change-notification word, more than one mailbox (mailboxes are
 * independent records), and the mutex's own fairness (assumed: its sections are a
 * few instructions long). See docs/COORDINATOR.md.
 *
 * Checked properties
 * - Mutual exclusion (assertions at every entry): a writer is alone; readers share.
 * - Bounded bypass (assertions): while a request waits, at most BOUND entries of
 *   others are admitted before it (fifo: NR+NW-1 of any kind; phase-fair reader: 1 writer;
 *   phase-fair writer: NW-1 writers and (NW-1)*NR readers).
 * - Deadlock freedom: every process loops forever, so any state with no executable
 *   step is an invalid end state.
 * - Starvation freedom (LTL, under weak fairness): a waiting reader and a waiting
 *   writer each eventually enter.
 *
 * Mutants (each must FAIL, which shows the checks can see the bug they name):
 *   -DMUTANT_WRITER_IGNORES_READERS         a writer enters while readers hold
 *   -DMUTANT_READER_IGNORES_QUEUED_WRITERS  phase-fair readers pass queued writers
 *   -DMUTANT_LAST_READER_WAKES_NOBODY       the last reader out forgets the futex wake
 */

#ifndef NR
#define NR 2
#endif
#ifndef NW
#define NW 2
#endif
#define N (NR + NW)
#define TICKETS (N + 1)

/* The shared record (one mailbox). */
byte next;              /* next ticket to hand out */
byte serving;           /* ticket allowed to enter */
bool writer;            /* a writer holds */
byte activeReaders;     /* readers holding (phase-fair: including admitted, not yet returned) */
byte ticketHolders;     /* threads waiting with a ticket */
byte blockedReaders;    /* phase-fair readers waiting for a writer to leave */
bit  phase;             /* bumped when blocked readers are admitted together */

/* The futex wake word, per waiter. */
bool notified[N];       /* the word changed since p observed it */
bool asleep[N];         /* p sleeps in FUTEX_WAIT */

/* Ghost state for the properties. */
byte inReaders;         /* readers inside their critical section */
byte inWriters;         /* writers inside their critical section */
bool asking[N];         /* p has asked and not yet entered its critical section */
bool waiting[N];        /* p has asked and not yet been admitted */
byte passedBy[N];       /* fifo: admissions of others while p waits; phase-fair: writer admissions */
byte passedByReaders[N];/* phase-fair writers: reader admissions while p waits */

inline bumpWake() {
    i = 0;
    do
    :: i < N -> notified[i] = true; i++
    :: else -> break
    od;
    i = 0
}

inline wakeAll() {
    d_step {
        i = 0;
        do
        :: i < N -> asleep[i] = false; i++
        :: else -> break
        od;
        i = 0
    }
}

/* Observe the wake word (under the mutex). */
inline observe(me) { notified[me] = false }

/* Unlocked: FUTEX_WAIT on the observed value; returns at once if it changed. */
inline futexWait(me) {
    atomic {
        if
        :: notified[me] -> skip
        :: else -> asleep[me] = true
        fi
    };
    !asleep[me]
}

/* Ghost, in the admitting step: `me` is admitted; count the overtaking for everyone
 * still waiting. */
inline countAdmission(me, isWriter) {
#ifndef LIVENESS
    i = 0;
    do
    :: i < N ->
        if
        :: i != me && waiting[i] ->
#ifdef PHASEFAIR
            if
            :: isWriter -> passedBy[i]++;
               if
               :: i < NR -> assert(passedBy[i] <= 1)          /* a reader waits for one writer at most */
               :: else -> assert(passedBy[i] <= NW - 1)      /* a writer for the writers queued before it */
               fi
            :: else ->
               assert(i < NR)   /* phase-fair readers are admitted directly only when no writer waits */
            fi
#else
            passedBy[i]++; assert(passedBy[i] <= N - 1)      /* everyone queued before it, once */
#endif
        :: else -> skip
        fi;
        i++
    :: else -> break
    od;
    i = 0;
    waiting[me] = false;
    passedBy[me] = 0;
    passedByReaders[me] = 0
#else
    skip
#endif
}

/* Ghost, phase-fair: a releasing writer admits every blocked reader at once. */
inline countBulkAdmission() {
#ifndef LIVENESS
    i = 0;
    do
    :: i < N ->
        if
        :: i < NR -> waiting[i] = false; passedBy[i] = 0   /* every waiting reader is blocked */
        :: else ->
            if
            :: waiting[i] ->
                passedByReaders[i] = passedByReaders[i] + blockedReaders;
                assert(passedByReaders[i] <= (NW - 1) * NR)   /* one reader phase per writer ahead */
            :: else -> skip
            fi
        fi;
        i++
    :: else -> break
    od;
    i = 0
#else
    skip
#endif
}

/* Ghost: `me` asks (the bypass counts are left out of liveness runs: smaller state space). */
#ifndef LIVENESS
inline markWaiting(me) { waiting[me] = true }
#else
inline markWaiting(me) { skip }
#endif

/* Ghost: `me` enters its critical section. */
inline enter(me) { asking[me] = false }

/* Release, both policies (Coordinator.release). */
inline releaseRead(me) {
    atomic {
        activeReaders--;
#ifndef MUTANT_LAST_READER_WAKES_NOBODY
        wake = (activeReaders == 0 && (ticketHolders > 0 || blockedReaders > 0));
#else
        wake = false;
#endif
        if
        :: wake -> bumpWake()
        :: else -> skip
        fi
    };
    if
    :: wake -> wakeAll(); wake = false
    :: else -> skip
    fi
}

inline releaseWrite(me) {
    atomic {
        writer = false;
        wake = (ticketHolders > 0 || blockedReaders > 0);
        if
        :: blockedReaders > 0 ->   /* phase-fair: admit every blocked reader at once */
            countBulkAdmission();
            activeReaders = activeReaders + blockedReaders;
            blockedReaders = 0;
            phase = 1 - phase
        :: else -> skip
        fi;
        if
        :: wake -> bumpWake()
        :: else -> skip
        fi
    };
    if
    :: wake -> wakeAll(); wake = false
    :: else -> skip
    fi
}

/* Writers: ticket queue, both policies (fifoAcquire exclusive / phaseFairAcquireWrite). */
proctype Writer(byte me) {
    byte ticket;
    byte i;
    bool admitted;
    bool wake;
    do
    :: atomic {
           asking[me] = true;
           markWaiting(me);
           ticket = next;
           next = (next + 1) % TICKETS;
           ticketHolders++
       };
       do
       :: atomic {
              if
#ifndef MUTANT_WRITER_IGNORES_READERS
              :: serving == ticket && !writer && activeReaders == 0 ->
#else
              :: serving == ticket && !writer ->
#endif
                  serving = (serving + 1) % TICKETS;
                  ticketHolders--;
                  writer = true;
                  countAdmission(me, true);
                  admitted = true
              :: else -> observe(me); admitted = false
              fi
          };
          if
          :: admitted -> break
          :: else -> futexWait(me)
          fi
       od;
       ticket = 0;
       admitted = false;
       d_step {
           inWriters++;
           assert(inWriters == 1 && inReaders == 0);
           enter(me)
       };
       inWriters--;
       releaseWrite(me)
    od
}

#ifdef PHASEFAIR
/* phaseFairAcquireRead */
proctype Reader(byte me) {
    bit myPhase;
    byte i;
    bool admitted;
    bool wake;
    do
    :: atomic {
           asking[me] = true;
           markWaiting(me);
           if
#ifndef MUTANT_READER_IGNORES_QUEUED_WRITERS
           :: !writer && ticketHolders == 0 -> activeReaders++; countAdmission(me, false); admitted = true
#else
           :: !writer -> activeReaders++; countAdmission(me, false); admitted = true
#endif
           :: else -> myPhase = phase; blockedReaders++; observe(me); admitted = false
           fi
       };
       do
       :: admitted -> break
       :: else ->
           futexWait(me);
           atomic {
               if
               :: phase != myPhase -> admitted = true   /* the writer counted us in activeReaders */
               :: else -> observe(me)
               fi
           }
       od;
       admitted = false;
       myPhase = 0;
       d_step {
           inReaders++;
           assert(inWriters == 0);
           enter(me)
       };
       inReaders--;
       releaseRead(me)
    od
}
#else
/* fifoAcquire, shared */
proctype Reader(byte me) {
    byte ticket;
    byte i;
    bool admitted;
    bool wake;
    do
    :: atomic {
           asking[me] = true;
           markWaiting(me);
           ticket = next;
           next = (next + 1) % TICKETS;
           ticketHolders++
       };
       do
       :: atomic {
              if
              :: serving == ticket && !writer ->
                  serving = (serving + 1) % TICKETS;
                  ticketHolders--;
                  activeReaders++;
                  countAdmission(me, false);
                  /* the next reader in line may enter too */
                  wake = (ticketHolders > 0);
                  if
                  :: wake -> bumpWake()
                  :: else -> skip
                  fi;
                  admitted = true
              :: else -> observe(me); admitted = false
              fi
          };
          if
          :: admitted -> break
          :: else -> futexWait(me)
          fi
       od;
       if
       :: wake -> wakeAll(); wake = false
       :: else -> skip
       fi;
       ticket = 0;
       admitted = false;
       d_step {
           inReaders++;
           assert(inWriters == 0);
           enter(me)
       };
       inReaders--;
       releaseRead(me)
    od
}
#endif

init {
    byte p;
    atomic {
        p = 0;
        do
        :: p < NR -> run Reader(p); p++
        :: p >= NR && p < N -> run Writer(p); p++
        :: else -> break
        od
    }
}

/* Starvation freedom: the first reader and the first writer (the others are symmetric). */
ltl readerEntersEventually { [] (asking[0] -> <> !asking[0]) }
ltl writerEntersEventually { [] (asking[NR] -> <> !asking[NR]) }
