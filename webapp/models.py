"""Database tables: analyses, the faces found in them, and visitors' corrections."""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import Boolean, DateTime, Float, ForeignKey, Integer, String, TypeDecorator, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from model_server.labels import EMOTIONS


def utcnow() -> datetime:
    """Timezone-aware now, so SQLite and PostgreSQL rows compare the same way."""
    return datetime.now(timezone.utc)


class UTCDateTime(TypeDecorator):
    """A timezone-aware timestamp, stored and read back as UTC on every database."""

    # SQLite has no zone: SQLAlchemy writes the wall time and reads a naive datetime, so the zone is
    # normalised to UTC on the way in and put back on the way out (issue 9).
    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:
        """Store UTC; a naive datetime is a bug (whose local time would it be?)."""
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("timestamps must be timezone-aware")
        return value.astimezone(timezone.utc)

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        """An aware UTC datetime, whatever the driver returned."""
        if value is None:
            return None
        return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


class Base(DeclarativeBase):
    """Declarative base of every table (Alembic compares migrations against its metadata)."""


class Analysis(Base):
    """One analysed image: its size, the model that answered, and who may delete it."""

    __tablename__ = "analyses"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)  # random, unguessable: it is the permalink
    created: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    model_name: Mapped[str] = mapped_column(String(100))
    model_version: Mapped[str] = mapped_column(String(100))
    source: Mapped[str] = mapped_column(String(16))  # upload, url or camera
    delete_token_hash: Mapped[str] = mapped_column(String(64))  # sha256 hex; the token itself is never stored
    photo_path: Mapped[str | None] = mapped_column(String(255))  # set only if the visitor chose to keep it

    faces: Mapped[list[Face]] = relationship(back_populates="analysis", cascade="all, delete-orphan",
                                             passive_deletes=True, order_by="Face.face_index")


class Face(Base):
    """One face in an analysis: its box and the seven probabilities, one column each."""

    __tablename__ = "faces"
    __table_args__ = (UniqueConstraint("analysis_id", "face_index"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    analysis_id: Mapped[str] = mapped_column(ForeignKey("analyses.id", ondelete="CASCADE"), index=True)
    face_index: Mapped[int] = mapped_column(Integer)
    x: Mapped[int] = mapped_column(Integer)
    y: Mapped[int] = mapped_column(Integer)
    w: Mapped[int] = mapped_column(Integer)
    h: Mapped[int] = mapped_column(Integer)
    p_angry: Mapped[float] = mapped_column(Float)
    p_disgust: Mapped[float] = mapped_column(Float)
    p_fear: Mapped[float] = mapped_column(Float)
    p_happy: Mapped[float] = mapped_column(Float)
    p_sad: Mapped[float] = mapped_column(Float)
    p_surprise: Mapped[float] = mapped_column(Float)
    p_neutral: Mapped[float] = mapped_column(Float)
    top: Mapped[str] = mapped_column(String(16))
    model_version: Mapped[str] = mapped_column(String(100))

    analysis: Mapped[Analysis] = relationship(back_populates="faces")
    corrections: Mapped[list[Correction]] = relationship(back_populates="face", cascade="all, delete-orphan",
                                                         passive_deletes=True)

    @property
    def emotions(self) -> dict[str, float]:
        """Label → probability, in the model's label order."""
        return {label: getattr(self, f"p_{label}") for label in EMOTIONS}

    def set_emotions(self, probabilities: dict[str, float]) -> None:
        """Fill the seven probability columns from a label → probability mapping."""
        for label in EMOTIONS:
            setattr(self, f"p_{label}", float(probabilities[label]))


CORRECTION_KINDS = ("correction", "confirmation")  # "the right emotion is ..." or "it's right"


class Correction(Base):
    """One visitor's answer about one face: a correction or a confirmation; the crop is kept only with consent.

    A visitor has at most one row per face: answering again updates it, withdrawing deletes it.
    """

    __tablename__ = "corrections"
    __table_args__ = (UniqueConstraint("face_id", "visitor", name="uq_corrections_face_visitor"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    face_id: Mapped[int] = mapped_column(ForeignKey("faces.id", ondelete="CASCADE"), index=True)
    emotion: Mapped[str] = mapped_column(String(16))
    created: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    consent_crop: Mapped[bool] = mapped_column(Boolean, default=False)
    crop_path: Mapped[str | None] = mapped_column(String(255))
    kind: Mapped[str] = mapped_column(String(16), default="correction", server_default="correction")
    # sha256 of who answered (their browser's visitor id or the analysis's delete token); None before 0002.
    visitor: Mapped[str | None] = mapped_column(String(64))

    face: Mapped[Face] = relationship(back_populates="corrections")


class RoomMinute(Base):
    """One recorded minute of an emoji room: how many took part and the room's mean of each emotion.

    Only aggregates, only while the host recorded and every participant agreed; no names, no frames.
    """

    __tablename__ = "room_minutes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    room_hash: Mapped[str] = mapped_column(String(64), index=True)  # sha256 of the room id: the link is not stored
    minute: Mapped[datetime] = mapped_column(UTCDateTime)  # start of the minute
    participants: Mapped[int] = mapped_column(Integer)
    samples: Mapped[int] = mapped_column(Integer)  # results averaged into this minute
    p_angry: Mapped[float] = mapped_column(Float)
    p_disgust: Mapped[float] = mapped_column(Float)
    p_fear: Mapped[float] = mapped_column(Float)
    p_happy: Mapped[float] = mapped_column(Float)
    p_sad: Mapped[float] = mapped_column(Float)
    p_surprise: Mapped[float] = mapped_column(Float)
    p_neutral: Mapped[float] = mapped_column(Float)

    # The same seven p_<label> columns as Face, read and written by the same code.
    shares = Face.emotions
    set_shares = Face.set_emotions
