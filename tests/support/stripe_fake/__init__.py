"""A local fake of Stripe's HTTP API, for tests: the official ``stripe`` library talks to it.

``StripeFake().running()`` serves it with uvicorn on a free port of 127.0.0.1, in a thread
with its own event loop, so both the library's blocking and its ``*_async`` calls reach
it. Point each client at ``fake.base_url`` (not through the library's globals, so tests
and services can use different fakes at once)::

    client = stripe.StripeClient(fake.api_key, base_addresses={"api": fake.base_url})

``fake.client()`` builds that client (without retries). The ``stripe_fake`` fixture
(``tests/conftest.py``) gives each test the process's fake, emptied for it; webhooks are
signed with :func:`sign_webhook` exactly as Stripe signs them.

What it serves, in the shapes of the API version the installed library speaks
(:data:`API_VERSION`), taking form-encoded bodies and query strings as Stripe does
(nested ``a[b][c]=``, ``items[0][price]=``):

- customers: create (with ``payment_method``, ``invoice_settings[default_payment_method]``),
  retrieve (a deleted one answers ``deleted: true``), update, delete, list by email;
- payment methods: attach, detach, retrieve, list by customer (both URLs), cards with
  brand, last4, exp_month, exp_year; Stripe's test ids (``pm_card_visa``,
  ``pm_card_chargeDeclined``, ``pm_card_authenticationRequired``, ...) and ``add_card``
  for cards that succeed, decline (with a decline code) or ask for 3-D Secure;
- Checkout Sessions in ``payment`` mode (``line_items`` with ``price`` or ``price_data``)
  and ``setup`` mode, with customer and metadata; their line items; expire;
  ``complete_checkout`` plays the customer paying on Stripe's page;
- SetupIntents and PaymentIntents: create, confirm (``off_session`` too), cancel, list. A
  card that needs 3-D Secure leaves the intent ``requires_action`` (``authenticate`` /
  ``fail_authentication`` play the customer), or off session answers 402
  ``authentication_required``; a declining card answers 402 ``card_declined``;
- charges, one per payment attempt (failed ones too, as in Stripe), with receipt_url,
  customer, amount, currency, description, status; retrieve, list;
- prices (seeded with ``add_price``) and products; subscriptions: create (customer,
  ``items[n][price]``, ``default_payment_method``, ``payment_behavior``), retrieve, update
  (metadata, default card, ``cancel_at_period_end``), cancel (``DELETE``), list; one
  invoice per period, paid by charging the card (``renew_subscription`` starts the next
  period); invoice payments (``_billing`` says how this API version links an invoice to
  its subscription and charge);
- events: every change records the event Stripe would send (``events``, ``events_of``,
  ``GET /v1/events``), ready for :func:`event_payload` and :func:`sign_webhook`;
- ``expand[]`` of fields holding an id, and of ``invoice.payments`` and
  ``checkout.session.line_items``; paths it cannot expand are ignored;
- ``Idempotency-Key`` on POSTs as Stripe honours it: the same key with the same
  parameters answers the first answer again (header ``Idempotent-Replayed: true``); with
  other parameters or on another endpoint, 400 ``idempotency_error``; keys last 24 hours.
  An answer is kept once the endpoint has started work, so errors in the parameters are
  not (fix the request and retry with the same key). Requests are handled one at a time,
  so the 409 Stripe gives a request racing another with the same key cannot happen here:
  the second gets the first's answer;
- requests are all or nothing: one that fails leaves no object behind, except that a
  declined payment leaves its traces as in Stripe (the failed charge, the intent's error);
- errors in Stripe's shape and statuses (``_errors`` lists them); unknown parameters are
  refused as Stripe refuses them, and Stripe's parameters whose effect the fake does not
  model are refused saying so, never silently ignored;
- ``requests``: every request as received (method, path, parameters, idempotency key,
  status, replayed or not); ``fail_next``: the next N requests to an endpoint answer an
  error (500 by default, or a card error, a 429, ...) before anything happens, as if
  they never reached Stripe, so a retry with the same idempotency key goes through.

What it does not do: refunds, disputes, payouts, Connect, taxes, coupons, trials,
prorations and plan changes, usage-based prices, test clocks, the search API, raw card
numbers (``POST /v1/payment_methods``), Checkout in ``subscription`` mode, calling
webhook endpoints itself (tests deliver the recorded events), ``created`` filters on
lists, API versions other than the library's, and rate limits (inject a 429 instead).
"""

from support.stripe_fake._customers import TEST_CARDS, Card, Outcome
from support.stripe_fake._errors import StripeError
from support.stripe_fake._server import RecordedRequest, StripeFake
from support.stripe_fake._webhooks import API_VERSION, build_event, event_payload, sign_webhook

__all__ = [
    "API_VERSION",
    "TEST_CARDS",
    "Card",
    "Outcome",
    "RecordedRequest",
    "StripeError",
    "StripeFake",
    "build_event",
    "event_payload",
    "sign_webhook",
]
