"""``caredio eval``: a model's cultural alignment on BLEnD-style tasks, leak-free.

* :mod:`.tasks` builds the items (short answer and multiple choice) from BLEnD files;
* :mod:`.grading` normalizes and grades answers;
* :mod:`.leakage` leaves out questions the memory that generated the data holds;
* :mod:`.evaldir` owns the files of an eval directory; :mod:`.engine` asks the model.
"""
