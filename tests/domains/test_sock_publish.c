/*
 * tests/domains/test_sock_publish.c - which of an application's waiting
 * threads the socket server signals when it publishes a socket
 * (sk_publish, domains/sock_table.c): a change on one side of a socket
 * wakes only that side's waiters, a state change wakes both, and a
 * publish that changes nothing wakes nobody.
 */
#include <criterion/criterion.h>
#include <stdlib.h>

#include "domains/sock_priv.h"

#define READER (1ull << 3) /* waiter word 3 waits to read */
#define SENDER (1ull << 5) /* waiter word 5 waits for room */

static struct sockd d;
static struct app apps[1];
static struct bh_app_slot slots[2];
static struct ssock *s;

static void setup(void)
{
	memset(&d, 0, sizeof(d));
	memset(apps, 0, sizeof(apps));
	memset(slots, 0, sizeof(slots));
	apps[0].used = true;
	apps[0].slots = slots;
	apps[0].nslots = 2;
	d.apps = apps;
	d.napps = 1;
	s = calloc(1, sizeof(*s));
	s->used = true;
	s->connected = true;
	s->app = 0;
	s->slot = 1;
	slots[1].want_rx = READER;
	slots[1].want_tx = SENDER;
	/* The first publish of a slot shows a new state: both sides. */
	sk_publish(&d, s);
	cr_assert_eq(apps[0].owe, READER | SENDER);
	apps[0].owe = 0;
}

static void teardown(void)
{
	free(s);
}

TestSuite(sock_publish, .init = setup, .fini = teardown);

Test(sock_publish, data_for_the_application_wakes_readers_only)
{
	s->rx_head += 100;
	sk_publish(&d, s);
	cr_assert_eq(apps[0].owe, READER);
	cr_assert_eq(slots[1].rx_head, 100, "published");
}

Test(sock_publish, room_in_the_send_ring_wakes_senders_only)
{
	s->tx_tail += 100;
	sk_publish(&d, s);
	cr_assert_eq(apps[0].owe, SENDER, "a reader is not woken by the send side");
	cr_assert_eq(slots[1].tx_tail, 100, "published");
}

Test(sock_publish, a_connection_to_accept_wakes_readers)
{
	s->accq = 1;
	sk_publish(&d, s);
	cr_assert_eq(apps[0].owe, READER);
}

Test(sock_publish, a_state_change_wakes_both)
{
	s->eof = true;
	sk_publish(&d, s);
	cr_assert_eq(apps[0].owe, READER | SENDER);
	apps[0].owe = 0;
	s->err = 104;
	sk_publish(&d, s);
	cr_assert_eq(apps[0].owe, READER | SENDER);
}

Test(sock_publish, nothing_new_wakes_nobody)
{
	sk_publish(&d, s);
	cr_assert_eq(apps[0].owe, 0);
}

Test(sock_publish, a_slot_given_to_a_new_socket_starts_fresh)
{
	s->published = false;
	sk_publish(&d, s);
	cr_assert_eq(apps[0].owe, READER | SENDER);
}
