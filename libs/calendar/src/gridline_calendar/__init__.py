"""One tenant's working calendar (工作日 with 调休, 工作时 windows) for every service; see :mod:`.workcalendar`."""

from .workcalendar import (
    DEFAULT_TZ,
    DEFAULT_WORKING_HOURS,
    CalendarGapError,
    Fallback,
    WorkCalendar,
    WorkingHours,
)

__all__ = ["DEFAULT_TZ", "DEFAULT_WORKING_HOURS", "CalendarGapError", "Fallback", "WorkCalendar", "WorkingHours"]
