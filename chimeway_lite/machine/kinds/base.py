"""What a rule kind is: the one class that knows everything about one kind of progress rule.

A :class:`RuleKind` holds, for its kind (``wait_until``, ``on_outcome``, ``stop`` …): the
typed declaration class, its dict keys, how it is validated, its dict form both ways, its
one-line description, the moves it adds to the machine's table, and its decision hook
(:meth:`RuleKind.decide`). The machine asks the registry (:mod:`chimeway_lite.machine.kinds`)
instead of testing rule classes, so a new kind is one new module registered there.

How the machine uses the hooks when an active run's delivery has an outcome (CONTRACT §4):

* rules whose :attr:`~RuleKind.role` is ``"match"`` (on_outcome, stop) are tried first, in
  list order: the first whose :meth:`~RuleKind.matches` is true decides;
* else the first rule whose role is ``"fallback"`` (wait_until) decides, for any branchable
  outcome;
* else the run completes. A delivery with no branchable outcome yet is a noop:
  ``prior_delivery_not_converged`` when the step has a rule whose kind
  :attr:`~RuleKind.awaits_convergence`, else ``no_matching_progress_rule``.

A kind that makes the run wait also says how the wait ends when it is due (:meth:`wake`).

A :class:`StepOption` is what a step declares besides its rules (``retry`` …); a
:class:`Gate` is a step option that decides whether a run that would activate its step does
(``throttle``, ``window``, ``digest``, CONTRACT §14): the machine asks the step's gates, in
the registry's order, before the ``step_activated`` row is written, from the facts the
engine gathered (:class:`Arrival`), and a gate that holds the run back decides instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, tzinfo
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Literal, TypeVar

import attrs

from ...core.errors import InvalidWorkflow
from ...core.records import Delivery, DigestBatch, Outcome, RunState, WorkflowRun, WorkflowStep
from ..decision import Decision, evidence, finish
from ..vocabulary import Move, Variant

if TYPE_CHECKING:
    from ..journey import Journey

R = TypeVar("R")
K = TypeVar("K", bound="RuleKind[Any]")

Role = Literal["match", "fallback", "none"]


@attrs.frozen
class Where:
    """Where a rule or a step option stands in a declaration, for :class:`InvalidWorkflow`
    messages; ``index`` is the rule's index (None for a step option)."""

    path: str  # e.g. "steps[0](inapp).progress[1](wait_until)", "steps[1](email).retry"
    step: str | None
    index: int | None

    def error(self, field: str | None, problem: str) -> InvalidWorkflow:
        """The error for ``field`` of this rule (the rule itself when None)."""
        path = self.path if field is None else f"{self.path}.{field}"
        return InvalidWorkflow(path, problem, step=self.step, rule=self.index)


@attrs.frozen
class Closing:
    """The facts of a digest batch that closes (CONTRACT §14.2): its id (None when the run
    belongs to none) and its runs still waiting, oldest first, each with its current step
    (runs of another version of the workflow have steps of their own)."""

    batch_id: str | None
    members: tuple[tuple[WorkflowRun, WorkflowStep], ...] = ()


@attrs.frozen
class Situation:
    """What a decision hook sees: the run, its journey, its current step and the time; for
    outcome decisions also the anchor delivery and its outcome; for a due digest wait the
    batch that closes."""

    run: WorkflowRun
    journey: Journey
    current: WorkflowStep
    now: datetime
    anchor: Delivery | None = None
    outcome: Outcome | None = None
    closing: Closing | None = None

    @property
    def rules(self) -> tuple[Any, ...]:
        """The current step's rules."""
        return self.journey.rules.get(self.current.id, ())

    def end_on_outcome(self, rule_kind: str, *, state: RunState, reason: str) -> Decision:
        """End the run in ``state`` on the anchor delivery's outcome: one ``reason`` row whose
        context names ``rule_kind``, the outcome, the anchor and its evidence."""
        anchor, outcome = self.anchor, self.outcome
        assert anchor is not None and outcome is not None
        context = {
            "rule_kind": rule_kind,
            "workflow_outcome": outcome.value,
            "anchor_delivery_id": anchor.id,
            **evidence(anchor),
        }
        return finish(
            self.run,
            self.current,
            anchor.id,
            context,
            self.now,
            state=state,
            reason=reason,
            terminal_reason=reason,
        )


_BY_TYPE: dict[type[Any], RuleKind[Any]] = {}


def register(kind: K) -> K:
    """Make ``kind`` the kind of its rule type (each kind module registers its ``KIND``)."""
    _BY_TYPE[kind.rule_type] = kind
    return kind


def kind_of(rule: object) -> RuleKind[Any]:
    """The kind of a typed rule (KeyError for an object that is no rule)."""
    return _BY_TYPE[type(rule)]


def wait_signals(rule: Any, rules: tuple[Any, ...]) -> tuple[str, ...]:
    """The signals a wait of ``rule`` pends on: its own, then those its siblings add
    (``on_signal`` events), each once, in that order (CONTRACT §13.4)."""
    own = kind_of(rule).waits(rule, rules)
    events = [*(own[1] if own else ()), *(e for r in rules for e in kind_of(r).signal_events(r))]
    return tuple(dict.fromkeys(events))


class RuleKind(Generic[R]):
    """One kind of progress rule; subclass it once per kind (see the module docstring)."""

    #: The kind's name, as in ``{"kind": "wait_until", ...}`` and contexts' ``rule_kind``.
    name: ClassVar[str]
    #: The typed declaration class (``WaitUntil`` …).
    rule_type: ClassVar[type[Any]]
    #: Dict keys besides ``kind``: the ones a dict must have, and the ones it may have.
    required_keys: ClassVar[frozenset[str]] = frozenset()
    optional_keys: ClassVar[frozenset[str]] = frozenset()
    #: How the rule takes part in the decision on a delivery's outcome.
    role: ClassVar[Role] = "none"
    #: True when an unconverged delivery means "wait for it" (noop
    #: ``prior_delivery_not_converged``) rather than "no rule matches".
    awaits_convergence: ClassVar[bool] = False
    #: The moves this kind adds to the machine's table, and the context keys they write.
    moves: ClassVar[tuple[Move, ...]] = ()
    context_keys: ClassVar[frozenset[str]] = frozenset()

    def from_dict(self, data: Mapping[str, Any]) -> R:
        """The typed rule of a dict whose keys were checked (not yet validated)."""
        raise NotImplementedError

    def to_dict(self, rule: R) -> dict[str, Any]:
        """The rule's stored dict form, ``kind`` included."""
        raise NotImplementedError

    def validate(self, rule: R, where: Where, step_keys: frozenset[str]) -> None:
        """Raise :class:`InvalidWorkflow` (through ``where.error``) for a broken rule."""
        raise NotImplementedError

    def describe(self, rule: R) -> str:
        """The rule in a few words, as explanations list a step's rules."""
        raise NotImplementedError

    def matches(self, rule: R, outcome: Outcome) -> bool:
        """For ``role == "match"``: does this rule decide ``outcome``?"""
        return False

    def decide(self, rule: R, situation: Situation) -> Decision:
        """The decision when this rule applies to the situation's outcome."""
        raise NotImplementedError

    def waits(self, rule: R, rules: tuple[Any, ...]) -> tuple[str, tuple[str, ...]] | None:
        """For a kind whose decision makes the run wait: the step key the wait leads to and
        the signals that end it early, given the step's ``rules``; None for other kinds.
        The decision and :func:`~chimeway_lite.engine.audit.verify` both read it."""
        return None

    def signal_events(self, rule: R) -> tuple[str, ...]:
        """The events this rule adds to a wait on its step (``on_signal``: its event)."""
        return ()

    def check_siblings(self, rule: R, rules: tuple[Any, ...], where: Where) -> None:
        """Raise :class:`InvalidWorkflow` when the rule does not fit the step's other rules
        (checked after every rule passed :meth:`validate`)."""

    def handles(self, rule: R, event_name: str) -> bool:
        """True when the rule decides what a signal ``event_name`` that ends the step's wait
        does (``on_signal``); the run completes when no rule does."""
        return False

    def on_signal(
        self, rule: R, situation: Situation, event_name: str, signalled_at: datetime | None
    ) -> Decision:
        """For a kind that :meth:`handles` signals: the decision when the signal ended the
        wait (``signalled_at`` None) or came before it began (the instant it was routed)."""
        raise NotImplementedError

    def wake(self, situation: Situation) -> Decision:
        """The decision when a wait this kind started is due (the run is waiting)."""
        raise NotImplementedError


OptionT = TypeVar("OptionT")


class StepOption(Generic[OptionT]):
    """One option a step may declare besides its rules (``retry`` …): its typed class, the
    config key and Step field it lives under, its dict keys, validation, dict form and
    description. Subclass it once per option and list it in the registry's
    ``STEP_OPTIONS``."""

    #: The Step field and the key of the step's stored config (``config["retry"]``).
    key: ClassVar[str]
    #: The typed declaration class (``Retry`` …).
    option_type: ClassVar[type[Any]]
    required_keys: ClassVar[frozenset[str]] = frozenset()
    optional_keys: ClassVar[frozenset[str]] = frozenset()

    def from_dict(self, data: Mapping[str, Any]) -> OptionT:
        """The typed option of a dict whose keys were checked (not yet validated)."""
        raise NotImplementedError

    def to_dict(self, option: OptionT) -> dict[str, Any]:
        """The option's stored dict form."""
        raise NotImplementedError

    def validate(self, option: OptionT, where: Where) -> None:
        """Raise :class:`InvalidWorkflow` (through ``where.error``) for a broken option."""
        raise NotImplementedError

    def describe(self, option: OptionT) -> str:
        """The option in a few words, for explanations."""
        raise NotImplementedError


@attrs.frozen
class Arrival:
    """The facts a step's gates read when a run would activate the step, gathered by the
    engine for that step only: ``activations`` — the activations of the throttle's group
    in its window, counted up to its limit; ``batch`` — the latest digest batch of the
    digest's group that has not closed (None: there is none); ``zone`` — the recipient's
    time zone (UTC when the trigger named none)."""

    activations: int = 0
    batch: DigestBatch | None = None
    zone: tzinfo = UTC


@attrs.frozen
class Reading:
    """What a reader (explain) knows of a run besides its row, for the sentences of a
    gate's moves: the time, the recipient's zone and its name, the run's current step, the
    time of its last row (``at``) and its due time (``due``), and ``items`` — the runs of
    its digest batch still waiting, or its delivery's digest size."""

    now: datetime
    zone: tzinfo
    zone_name: str
    step: WorkflowStep
    at: datetime | None = None
    due: datetime | None = None
    items: int | None = None


class Gate(StepOption[OptionT]):
    """A step option that decides whether a run that would activate its step does (see the
    module docstring). Subclass it once per gate and list it in the registry's ``GATES``.
    """

    #: The ``rule_kind`` of its rows, and the run's ``wait_kind`` while it holds a run.
    name: ClassVar[str]
    #: The moves it adds to the machine's table, and the variants it adds to moves there
    #: (reason, variant).
    moves: ClassVar[tuple[Move, ...]] = ()
    variants: ClassVar[tuple[tuple[str, Variant], ...]] = ()

    def admit(
        self,
        option: OptionT,
        decision: Decision,
        step: WorkflowStep,
        arrival: Arrival,
        now: datetime,
    ) -> Decision | None:
        """None when the run may activate ``step`` as ``decision`` says (the next gate is
        asked); else the decision instead (see :func:`~..decision.held_back`)."""
        raise NotImplementedError

    def wake(self, situation: Situation) -> Decision:
        """For a gate that makes runs wait: the decision when the wait is due."""
        raise NotImplementedError

    def names(self, option: OptionT, reading: Reading) -> dict[str, Any]:
        """The names its sentences read besides the row's context (explain's facts)."""
        return {}
