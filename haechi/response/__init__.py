"""Response: incidents shared by the CCTV center, the situation room and the 119 center; CCTV
analytics events, drones, 119 units, dispatch and the golden time (issue 9)."""
